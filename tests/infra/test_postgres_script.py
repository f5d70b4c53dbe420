"""infra/scripts/postgres.sh from a checkout that other users cannot traverse.

A new user clones into a mode-700 home or a `mktemp -d` folder. As root, the server runs as
its own OS user, which cannot reach data under such a checkout: the script must keep the
cluster where that user can reach it and still be driven from the checkout. The test copies
the script into a fresh mode-700 folder laid out like a checkout, with its own port (never the
shared instance on 15432), starts it, connects, stops and resets it.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from llmops_kit.testing import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Checkout:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.script = root / "repo" / "infra" / "scripts" / "postgres.sh"
        self.home = root / "repo" / ".llmops"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "POSTGRES_"))}
        self.env["POSTGRES_PORT"] = str(port)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # from inside the checkout, as a user would (the default LLMOPS_HOME: <repo>/.llmops)
        proc = subprocess.run(["bash", str(self.script), *args], cwd=self.root / "repo",
                              env=self.env, capture_output=True, text=True, timeout=150,
                              check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"postgres.sh {' '.join(args)} failed:\n{proc.stderr[-3000:]}",
                        pytrace=False)
        return proc


@pytest.fixture
def private_checkout() -> Iterator[Checkout]:
    root = Path(tempfile.mkdtemp(prefix="llmops-private-"))
    os.chmod(root, 0o700)
    (root / "repo" / "infra" / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "infra" / "scripts" / "postgres.sh",
                 root / "repo" / "infra" / "scripts" / "postgres.sh")
    checkout = Checkout(root, free_port())
    try:
        yield checkout
    finally:
        checkout.run("reset", check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_runs_from_a_checkout_other_users_cannot_traverse(
        private_checkout: Checkout) -> None:
    co = private_checkout
    assert stat.S_IMODE(co.root.stat().st_mode) == 0o700
    started = co.run("start")
    assert "running pid" in started.stdout and f"port {co.env['POSTGRES_PORT']}" in started.stdout
    url = co.run("url").stdout.strip()
    assert url.endswith(f"@127.0.0.1:{co.env['POSTGRES_PORT']}/llmops")

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT current_user").scalar_one() == "llmops"
            assert conn.exec_driver_sql("SELECT 40 + 2").scalar_one() == 42
    finally:
        engine.dispose()
    admin = create_engine(url.replace("llmops@", "postgres@", 1))  # data_directory: superuser
    try:
        with admin.connect() as conn:
            data_dir = str(conn.exec_driver_sql("SHOW data_directory").scalar_one())
    finally:
        admin.dispose()

    location = co.home / "data" / "postgres.location"
    if os.geteuid() == 0:  # the server runs as `postgres`: its data sits outside the checkout
        assert not data_dir.startswith(str(co.root))
        assert location.read_text().strip() == data_dir
        assert (co.home / "logs" / "postgres.log").resolve() == Path(data_dir).parent / "postgres.log"
    else:  # the server runs as the invoking user: everything stays in the checkout
        assert data_dir == str(co.home / "data" / "postgres")

    # a second start is idempotent and finds the same cluster
    assert co.run("start").stdout == started.stdout == co.run("status").stdout
    assert co.run("health", check=False).returncode == 0
    co.run("stop")
    status = co.run("status", check=False)
    assert (status.returncode, status.stdout.strip()) == (3, "postgres: stopped")
    co.run("reset")
    assert not Path(data_dir).exists() and not location.exists()
