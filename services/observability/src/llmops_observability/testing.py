"""Test helpers for the observability store on chDB.

chDB runs ONE embedded engine per process, on the first path it was opened with: opening a
second path in the same process fails ("EmbeddedServer already initialized with path ...").
So every test in a pytest process shares one engine folder, and tests keep apart by database
(`fresh_client()` gives each caller a new, migrated database of its own).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path

from clickhouse_connect.driver.client import Client

from llmops_observability.clickhouse import connect, migrate

_engine_dir: Path | None = None


def chdb_dir() -> Path:
    """The engine folder of this process (created on first use, under the temp folder, and
    removed when the process exits)."""
    global _engine_dir
    if _engine_dir is None:
        _engine_dir = Path(tempfile.mkdtemp(prefix="llmops-chdb-"))
        atexit.register(shutil.rmtree, _engine_dir, ignore_errors=True)
    return _engine_dir


def fresh_client(prefix: str = "test", dsn: str | None = None) -> Client:
    """A client on a new database of this process' chDB engine (`dsn`, else chdb_dir()), with
    the schema applied."""
    client = connect(dsn or f"chdb://{chdb_dir()}", database=f"{prefix}_{uuid.uuid4().hex[:12]}")
    migrate(client)
    return client
