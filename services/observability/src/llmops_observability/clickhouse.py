"""The observability store: one clickhouse-connect client, on chDB (embedded, the local default)
or a ClickHouse server (production), and the schema migrations applied to it on start."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

MIGRATIONS_PACKAGE = "llmops_observability.migrations"
MIGRATIONS_TABLE = "schema_migrations"
_STATEMENT_END = re.compile(r"(?m)^;\s*$")
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MigrationError(RuntimeError):
    """The store's recorded schema history disagrees with the migrations in this build."""


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        out = []
        for chunk in _STATEMENT_END.split(self.sql):
            body = "\n".join(line for line in chunk.splitlines()
                             if not line.lstrip().startswith("--")).strip()
            if body:
                out.append(body)
        return out


def connect(dsn: str, database: str = "llmops", password: str | None = None,
            **options: Any) -> Client:
    """A client on `dsn` with `database` created and selected. `chdb:///path/to/dir` is the
    embedded engine in this process; `http(s)://user@host:8123` a ClickHouse server."""
    if not _IDENT.match(database):
        raise ValueError(f"database name {database!r} is not an identifier")
    kwargs: dict[str, Any] = dict(options)
    if password is not None:
        kwargs["password"] = password
    client = clickhouse_connect.get_client(dsn=dsn, **kwargs)
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.database = database
    return client


def migrations() -> list[Migration]:
    """The migrations shipped in this build, in order."""
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if numbers != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration numbers are not 1..n without gaps: {numbers}")
    return found


def migrate(client: Client, ttl_days: dict[str, int] | None = None) -> list[str]:
    """Applies the migrations not yet recorded in `schema_migrations` (idempotent: a second call
    applies nothing) and sets each table's TTL from `ttl_days` (table -> days; 0 keeps rows
    forever). A recorded migration whose text changed since is refused. Returns the names of
    the migrations applied by this call."""
    client.command(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (number UInt32, name String, "
        "checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY number")
    recorded = {int(n): (name, checksum) for n, name, checksum in client.query(
        f"SELECT number, name, checksum FROM {MIGRATIONS_TABLE} FINAL").result_rows}
    applied = []
    for migration in migrations():
        if migration.number in recorded:
            name, checksum = recorded[migration.number]
            if checksum != migration.checksum:
                raise MigrationError(
                    f"migration {name} was applied with checksum {checksum[:12]}, this build "
                    f"has {migration.checksum[:12]}: add a new migration instead of editing one")
            continue
        for statement in migration.statements():
            client.command(statement)
        client.insert(MIGRATIONS_TABLE, [[migration.number, migration.name, migration.checksum]],
                      column_names=["number", "name", "checksum"])
        applied.append(migration.name)
        log.info("applied migration %s", migration.name)
    for table, days in (ttl_days or {}).items():
        set_ttl(client, table, days)
    return applied


def set_ttl(client: Client, table: str, days: int) -> None:
    if not _IDENT.match(table):
        raise ValueError(f"table name {table!r} is not an identifier")
    if days > 0:
        client.command(f"ALTER TABLE {table} MODIFY TTL toDateTime(ts) + INTERVAL {int(days)} DAY")
    elif _has_ttl(client, table):
        client.command(f"ALTER TABLE {table} REMOVE TTL")


def _has_ttl(client: Client, table: str) -> bool:
    rows = client.query(
        "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() "
        "AND name = {t:String}", parameters={"t": table}).result_rows
    return bool(rows) and " TTL " in rows[0][0]
