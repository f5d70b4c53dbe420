"""Waiting for the local stack to be idle before a timed phase: Kafka lag 0 and CPU settled.

"Idle" is about the stack's own processes (the services started from $LLMOPS_HOME/run/*.pid,
the broker, Weaviate), not the whole machine: on a shared host other work never stops, so
the machine's load average is reported beside the figures instead of waited for.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from llmops_kit.settings import KafkaSettings, llmops_home

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Idle:
    lag: int
    stack_cpu: float  # cores the stack's processes used in the last window
    waited_s: float
    settled: bool

    def __str__(self) -> str:
        state = "idle" if self.settled else "NOT settled"
        return (f"{state} after {self.waited_s:.1f}s (lag {self.lag}, stack CPU "
                f"{self.stack_cpu:.2f} cores, load avg {os.getloadavg()[0]:.1f})")


def stack_pids(home: Path | None = None) -> list[int]:
    """The live processes whose pid files the CLI and the infra scripts keep under run/."""
    pids = []
    for pid_file in sorted((home or llmops_home()).joinpath("run").glob("*.pid")):
        try:
            pid = int(pid_file.read_text().split()[0])
        except (ValueError, IndexError, OSError):
            continue
        if Path(f"/proc/{pid}").exists():
            pids.append(pid)
    return pids


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process and its reaped children (a JVM or Go server's threads are
    all in the process's own counters)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(x) for x in fields[11:15])


async def stack_cpu(pids: list[int], window: float = 1.0) -> float:
    """Cores used by `pids` over `window` seconds."""
    before = sum(_cpu_ticks(p) for p in pids)
    await asyncio.sleep(window)
    after = sum(_cpu_ticks(p) for p in pids)
    return (after - before) / _TICKS / window


async def consumer_lag(kafka: KafkaSettings, groups: tuple[str, ...] = ()) -> int:
    """Records behind, summed over `groups` (default: every group on the broker)."""
    admin = AIOKafkaAdminClient(**kafka.client_options())
    consumer = AIOKafkaConsumer(**kafka.client_options())
    await admin.start()
    await consumer.start()
    try:
        total = 0
        for group, _ in await admin.list_consumer_groups():
            if groups and group not in groups:
                continue
            offsets = await admin.list_consumer_group_offsets(group)
            committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
            if not committed:
                continue
            ends = await consumer.end_offsets(list(committed))
            total += sum(max(0, ends[tp] - off) for tp, off in committed.items())
        return total
    finally:
        await consumer.stop()
        await admin.close()


async def wait_idle(kafka: KafkaSettings, groups: tuple[str, ...] = (), max_cpu: float = 0.15,
                    quiet_windows: int = 2, timeout: float = 120.0) -> Idle:
    """Until the broker shows no lag and the stack's processes use under `max_cpu` cores for
    `quiet_windows` consecutive seconds (or `timeout`, reported as not settled)."""
    start = time.monotonic()
    pids = stack_pids()
    quiet, lag, cpu = 0, -1, 0.0
    while time.monotonic() - start < timeout:
        lag = await consumer_lag(kafka, groups)
        cpu = await stack_cpu(pids)
        quiet = quiet + 1 if lag == 0 and cpu < max_cpu else 0
        if quiet >= quiet_windows:
            return Idle(lag, cpu, time.monotonic() - start, True)
    return Idle(lag, cpu, time.monotonic() - start, False)
