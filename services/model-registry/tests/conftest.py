"""Databases for the registry's tests: SQLite files and a private Postgres.

`postgres` starts the cluster with `bash infra/scripts/postgres.sh start` (failing, never
skipping, when it cannot) and creates a database of its own for this test session, dropped at
the end, so concurrent sessions never see each other's rows. `database_url` gives each test a
fresh, empty registry on the backend it is parametrized with (on Postgres: its own schema in the
session's database, selected through libpq's `options=-csearch_path=...`).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from llmops_kit.testing import REPO, infra_script

BACKENDS = ["sqlite", "postgres"]


def _server_url() -> str:
    """URL of the `llmops` database on the cluster the script runs (its real port)."""
    proc = subprocess.run(["bash", str(REPO / "infra" / "scripts" / "postgres.sh"), "url"],
                          capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.fail(f"postgres.sh url failed: {proc.stderr[-2000:]}", pytrace=False)
    return proc.stdout.strip()


def _admin(server: str, statement: str) -> None:
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """SQLAlchemy URL of a database created for this test session on the local Postgres."""
    infra_script("postgres", "start")
    server = _server_url()
    name = f"registry_test_{uuid.uuid4().hex[:12]}"
    try:
        _admin(server, f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        pytest.fail(f"Postgres is not usable at {server}: {exc}", pytrace=False)
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _create_schema(base_url: str) -> tuple[str, str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    finally:
        engine.dispose()
    return f"{base_url}?options={quote(f'-csearch_path={schema}')}", schema


@pytest.fixture(scope="session")
def postgres_schema(postgres: str) -> Callable[[], str]:
    """Makes URLs of fresh, empty schemas in the session's database (dropped with it)."""
    return lambda: _create_schema(postgres)[0]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty registry database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/registry.db"
        return
    base = request.getfixturevalue("postgres")
    url, schema = _create_schema(base)
    try:
        yield url
    finally:
        engine = create_engine(base, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            engine.dispose()
