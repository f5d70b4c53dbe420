"""infra/scripts/kafka.sh start: a broker that is busy (logging, using CPU) is still starting.

A broker recovering thousands of partitions works for minutes before it serves; a fixed wait
gave up on it. The test starts a broker of its own (fresh LLMOPS_HOME, own ports, the jars the
shared install resolved) with a KAFKA_START_TIMEOUT shorter than a broker's start-up: it must
come up because it stays busy. Then it stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from llmops_kit.testing import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SCRIPT = REPO / "infra" / "scripts" / "kafka.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _shared_libs() -> Path:
    home = Path(os.environ.get("LLMOPS_HOME", REPO / ".llmops"))
    libs = home / "kafka" / "libs"
    if not (libs / ".pom.sha256").is_file():
        subprocess.run(["bash", str(SCRIPT), "install"], check=True, timeout=600,
                       env={**os.environ, "LLMOPS_HOME": str(home)})
    return libs


def test_start_waits_while_the_broker_log_grows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / "libs").symlink_to(_shared_libs())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "KAFKA_"))}
    env.update({"LLMOPS_HOME": str(home), "KAFKA_PORT": str(_free_port()),
                "KAFKA_CONTROLLER_PORT": str(_free_port()), "KAFKA_START_TIMEOUT": "1"})
    started = time.monotonic()
    try:
        run = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True,
                             timeout=240)
        elapsed = time.monotonic() - started
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-3000:]
        health = subprocess.run(["bash", str(SCRIPT), "health"], env=env, capture_output=True, text=True)
        assert health.returncode == 0, health.stdout + health.stderr
        # A JVM broker takes well over 1 s to serve; the wait went on because it was busy.
        assert elapsed > 1
        assert "still busy past KAFKA_START_TIMEOUT=1s" in output, output[-3000:]
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)
