"""Consumer lag per partition, refreshed from the bus's own aiokafka consumers.

Lag is the partition's high-water mark (its end offset, asked from the broker so it is fresh
even while the consumer is busy with a long batch) minus the consumer's position (the next
record it will hand to the service). Only partitions currently assigned to this process are
reported; a partition that moves to another replica drops its series here and appears there,
so `sum by (topic, group)` over all replicas is the group's lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmops_kit.metrics import KitMetrics

log = logging.getLogger(__name__)

# How long to wait for a position that is not known yet (a partition just assigned).
POSITION_TIMEOUT_SECONDS = 1.0
Labels = tuple[str, str, str]  # topic, partition, group


@dataclass
class ConsumerLag:
    """Refreshes `llmops_consumer_lag` for the consumers `sources` hand out (None: not
    started yet)."""

    metrics: KitMetrics
    sources: list[tuple[Callable[[], Any], str]] = field(default_factory=list)
    _reported: set[Labels] = field(default_factory=set)

    def add(self, consumer: Callable[[], Any], group: str) -> None:
        self.sources.append((consumer, group))

    async def refresh(self) -> dict[Labels, int]:
        """One refresh of every series; returns what it set."""
        current: dict[Labels, int] = {}
        for get_consumer, group in self.sources:
            consumer = get_consumer()
            if consumer is not None:
                current.update(await self._lag(consumer, group))
        for labels, lag in current.items():
            self.metrics.consumer_lag.labels(*labels).set(lag)
        for labels in self._reported - current.keys():
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(*labels)
        self._reported = set(current)
        return current

    async def _lag(self, consumer: Any, group: str) -> dict[Labels, int]:
        partitions = sorted(consumer.assignment() or (), key=lambda tp: (tp.topic, tp.partition))
        if not partitions:
            return {}
        ends = await consumer.end_offsets(partitions)
        lags: dict[Labels, int] = {}
        for tp in partitions:
            try:
                position = await asyncio.wait_for(consumer.position(tp), POSITION_TIMEOUT_SECONDS)
            except TimeoutError:
                continue
            except Exception:  # revoked while we asked: the next refresh sees the new assignment
                log.debug("no position for %s[%d]", tp.topic, tp.partition, exc_info=True)
                continue
            end = ends.get(tp)
            if end is not None:
                lags[(tp.topic, str(tp.partition), group)] = max(0, int(end) - int(position))
        return lags

    async def run(self, interval: float) -> None:
        """Refreshes every `interval` seconds until cancelled."""
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker is away: keep the last values, try again later
                log.warning("could not refresh consumer lag", exc_info=True)
            await asyncio.sleep(interval)

    def clear(self) -> None:
        """Drops every series this process reported (the bus stopped: no partitions)."""
        for labels in self._reported:
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(*labels)
        self._reported = set()
