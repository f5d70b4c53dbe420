"""Relational stores on SQLAlchemy: one way to open, lock and upsert, SQLite or Postgres.

- `make_engine(url)`: SQLite gets WAL (replicas on one host share the file), a busy timeout
  (wait for the writer instead of failing) and foreign keys; SQLAlchemy emits BEGIN itself so a
  writer can take the lock up front. The folder of a SQLite file is created.
- `writer(engine)`: the engine for read-then-write transactions. On SQLite it begins with
  `BEGIN IMMEDIATE`, so the write lock is held from the first read (SQLite ignores
  `SELECT ... FOR UPDATE`); on Postgres, use `with_for_update=True` on the rows read.
- `create_schema(metadata, engine)`: creates missing tables; safe when replicas race.
- `insert_ignore` / `upsert`: the dialect's `ON CONFLICT` statement.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, ProgrammingError
from sqlalchemy.sql.dml import Insert

WRITE = {"sqlite_begin": "IMMEDIATE"}


def _sqlite_connect(dbapi_conn: Any, _: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is always DEFERRED).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    _use_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _use_wal(cur: Any) -> None:
    """WAL is a property of the file, set once. Switching takes a lock for which SQLite does not
    always wait (busy_timeout), so replicas racing on a new file retry the switch briefly."""
    for attempt in range(100):
        if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            return
        try:
            cur.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            if attempt == 99:
                raise
            time.sleep(0.05)


def _sqlite_begin(conn: Any) -> None:
    # A deferred transaction that reads, then writes, fails with "database is locked" instead
    # of waiting when another writer got there first; writers ask for IMMEDIATE.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def writer(engine: Engine) -> Engine:
    """The engine to open read-then-write transactions with (SQLite: BEGIN IMMEDIATE)."""
    return engine.execution_options(**WRITE)


def create_schema(metadata: MetaData, engine: Engine) -> None:
    """Creates missing tables. Two replicas starting on an empty Postgres can race (both see a
    table missing, all but one CREATE fail); the next attempt finds the tables in place."""
    for attempt in range(3):
        try:
            metadata.create_all(writer(engine))
            return
        except (IntegrityError, ProgrammingError):
            if attempt == 2:
                raise


def _insert(engine: Engine, table: Table | Any) -> Any:
    return (pg_insert if engine.dialect.name == "postgresql" else sqlite_insert)(table)


def insert_ignore(engine: Engine, table: Table | Any, values: Mapping[str, Any]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING (a replayed write changes nothing)."""
    stmt: Insert = _insert(engine, table).values(**values).on_conflict_do_nothing()
    return stmt


def upsert(engine: Engine, table: Table | Any, values: Mapping[str, Any],
           keys: Sequence[str]) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET every other column to the new value."""
    stmt = _insert(engine, table).values(**values)
    update = {k: stmt.excluded[k] for k in values if k not in keys}
    result: Insert = stmt.on_conflict_do_update(index_elements=list(keys), set_=update)
    return result
