"""infra/scripts/netns-run.py: a server that listens on every interface, run inside a private
network namespace, is reachable only through the relay on the host's 127.0.0.1, and dies
with the relay."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "scripts" / "netns-run.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_of(pid: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise AssertionError(f"{pid} started no child")


def get(port: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                return int(response.status)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def relayed(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    # The server binds 0.0.0.0, as Weaviate's gRPC API does.
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--forward", str(port), "--",
                             sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0",
                             "--directory", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_the_server_is_reached_through_loopback_only(
    relayed: tuple[subprocess.Popen[bytes], int]
) -> None:
    proc, port = relayed
    server = child_of(proc.pid)
    assert get(port) == 200
    # Its namespace is not ours and has no interface but loopback.
    assert os.readlink(f"/proc/{server}/ns/net") != os.readlink("/proc/self/ns/net")
    interfaces = [line.split(":")[0].strip()
                  for line in Path(f"/proc/{server}/net/dev").read_text().splitlines()[2:]]
    assert interfaces == ["lo"]
    # On the host only the relay listens, on 127.0.0.1.
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    ours = [line.split()[3] for line in out.splitlines() if f":{port} " in line]
    assert ours == [f"127.0.0.1:{port}"]


def test_sigterm_stops_the_server_and_a_killed_relay_takes_it_along(
    relayed: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    proc, port = relayed
    server = child_of(proc.pid)
    assert get(port) == 200
    proc.send_signal(signal.SIGTERM)
    # The server got the SIGTERM; the relay exits with its status.
    assert proc.wait(10) != 0
    assert not Path(f"/proc/{server}").exists() or "Z" in Path(f"/proc/{server}/stat").read_text()

    second = free_port()
    relay = subprocess.Popen([sys.executable, str(SCRIPT), "--forward", str(second), "--",
                              sys.executable, "-m", "http.server", str(second)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    orphan = child_of(relay.pid)
    assert get(second) == 200
    relay.kill()
    relay.wait(10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{orphan}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{orphan}").exists(), "the server outlived its relay"
