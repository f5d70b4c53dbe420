"""Shutting a service down: draining ends in time, or the process names what hung and exits.

Each case runs `run_until_signalled` in a real subprocess and sends it real signals.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

SCRIPT = """
import asyncio, sys
from llmops_kit.runner import run_until_signalled

async def start():
    print("started", flush=True)

async def stuck_close_of_the_consumer():
    await asyncio.Event().wait()  # a stop step that never ends

async def quick():
    await asyncio.sleep(0.05)

stop = {"stuck": stuck_close_of_the_consumer, "quick": quick}[sys.argv[1]]
timeout = float(sys.argv[2]) if sys.argv[2] != "none" else None
asyncio.run(run_until_signalled(start, stop, stop_timeout=timeout))
print("returned", flush=True)
"""


def _started(mode: str, timeout: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, mode, timeout], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    return proc


def test_a_drain_that_finishes_returns_normally() -> None:
    proc = _started("quick", "5")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "returned" in out, err


def test_a_stop_step_that_hangs_is_named_and_the_process_exits_at_the_deadline() -> None:
    proc = _started("stuck", "0.5")
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "returned" not in out
    assert time.monotonic() - sent < 10
    assert "shutting down took longer than 0.5 s" in err
    assert "stuck_close_of_the_consumer" in err  # the hung coroutine's stack


def test_a_second_signal_ends_a_drain_without_a_deadline() -> None:
    proc = _started("stuck", "none")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proc.poll() is None  # still draining: no deadline
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "returned" not in out
    assert "a second signal arrived while shutting down" in err
    assert "stuck_close_of_the_consumer" in err
