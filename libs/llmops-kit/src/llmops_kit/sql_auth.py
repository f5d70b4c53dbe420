"""The platform database on SQLAlchemy (SQLite or Postgres): tenants, API keys, the audit log.

One URL (LLMOPS_AUTH_DATABASE_URL) is shared by every service: the model-registry process
writes it (AdminService), every service reads keys from it. `auth_state` holds one row whose
`generation` goes up in the same transaction as every tenant or key change; services poll it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, RowMapping

from llmops_kit.audit import AuditEntry
from llmops_kit.auth import Role
from llmops_kit.db import create_schema, insert_ignore, make_engine, writer
from llmops_kit.errors import AlreadyExists
from llmops_kit.keys import ApiKey, Tenant

metadata = MetaData()
tenants = Table(
    "platform_tenants", metadata,
    Column("tenant_id", String(63), primary_key=True),
    Column("display_name", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
api_keys = Table(
    "platform_api_keys", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("tenant_id", String(63), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("description", String(500), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)
auth_state = Table(
    "platform_auth_state", metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", BigInteger, nullable=False),
)
audit_log = Table(
    "platform_audit_log", metadata,
    Column("sequence", Integer, primary_key=True, autoincrement=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False, index=True),
    Column("action", String(64), nullable=False, index=True),
    Column("target", String(500), nullable=False),
    Column("tenant_id", String(63), nullable=False, index=True),
    Column("actor", String(64), nullable=False),
    Column("actor_tenant", String(63), nullable=False),
    Column("service", String(64), nullable=False),
    Column("before_json", Text),
    Column("after_json", Text),
    Column("trace_id", String(64), nullable=False, default=""),
)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every time the store stores is UTC.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _key(row: RowMapping) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"], tenant=row["tenant_id"], role=Role(row["role"]),
        description=row["description"], created_at=_utc(row["created_at"]) or datetime.now(UTC),
        expires_at=_utc(row["expires_at"]), last_used_at=_utc(row["last_used_at"]),
        revoked_at=_utc(row["revoked_at"]), secret_hash=row["secret_hash"])


def _tenant(row: RowMapping) -> Tenant:
    return Tenant(row["tenant_id"], row["display_name"],
                  _utc(row["created_at"]) or datetime.now(UTC))


def open_engine(url: str) -> Engine:
    """The platform database, its tables created if missing."""
    engine = make_engine(url)
    create_schema(metadata, engine)
    with writer(engine).begin() as conn:
        conn.execute(insert_ignore(engine, auth_state, {"id": 1, "generation": 0}))
    return engine


class SqlKeyStore:
    """llmops_kit.keys.KeyStore on SQLAlchemy."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _bump(self, conn: Connection) -> None:
        conn.execute(update(auth_state).where(auth_state.c.id == 1)
                     .values(generation=auth_state.c.generation + 1))

    def create_tenant(self, tenant_id: str, display_name: str, now: datetime) -> Tenant:
        with writer(self.engine).begin() as conn:
            found = conn.execute(select(tenants).where(tenants.c.tenant_id == tenant_id)
                                 .with_for_update()).mappings().first()
            if found is not None:
                raise AlreadyExists("TENANT_EXISTS", f"tenant {tenant_id!r} already exists")
            conn.execute(tenants.insert().values(tenant_id=tenant_id, display_name=display_name,
                                                 created_at=now))
            self._bump(conn)
        return Tenant(tenant_id, display_name, now)

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tenants).where(tenants.c.tenant_id == tenant_id)
                               ).mappings().first()
        return _tenant(row) if row else None

    def list_tenants(self) -> list[Tenant]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tenants).order_by(tenants.c.tenant_id)).mappings().all()
        return [_tenant(r) for r in rows]

    def delete_tenant(self, tenant_id: str, now: datetime) -> tuple[Tenant | None, list[ApiKey]]:
        with writer(self.engine).begin() as conn:
            row = conn.execute(select(tenants).where(tenants.c.tenant_id == tenant_id)
                               .with_for_update()).mappings().first()
            live = [_key(r) for r in conn.execute(
                select(api_keys).where(api_keys.c.tenant_id == tenant_id,
                                       api_keys.c.revoked_at.is_(None))
                .with_for_update()).mappings()]
            conn.execute(update(api_keys).where(api_keys.c.tenant_id == tenant_id,
                                                api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=now))
            conn.execute(tenants.delete().where(tenants.c.tenant_id == tenant_id))
            self._bump(conn)
        return (_tenant(row) if row else None), [k.public() for k in live]

    def create_key(self, key: ApiKey) -> ApiKey:
        with writer(self.engine).begin() as conn:
            conn.execute(api_keys.insert().values(
                key_id=key.key_id, secret_hash=key.secret_hash, tenant_id=key.tenant,
                role=key.role.value, description=key.description, created_at=key.created_at,
                expires_at=key.expires_at))
            self._bump(conn)
        return key.public()

    def get_key(self, key_id: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)
                               ).mappings().first()
        return _key(row).public() if row else None

    def list_keys(self, tenant: str | None, include_revoked: bool) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.tenant_id, api_keys.c.created_at,
                                          api_keys.c.key_id)
        if tenant:
            query = query.where(api_keys.c.tenant_id == tenant)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_key(r).public() for r in conn.execute(query).mappings()]

    def revoke_key(self, key_id: str, now: datetime) -> tuple[ApiKey, ApiKey] | None:
        with writer(self.engine).begin() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)
                               .with_for_update()).mappings().first()
            if row is None:
                return None
            before = _key(row).public()
            if before.revoked_at is not None:
                return before, before
            conn.execute(update(api_keys).where(api_keys.c.key_id == key_id)
                         .values(revoked_at=now))
            self._bump(conn)
        return before, ApiKey(**{**before.__dict__, "revoked_at": now})

    def generation(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(auth_state.c.generation).where(auth_state.c.id == 1)
                                 ).scalar()
        return int(value or 0)

    def active_keys(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).where(api_keys.c.revoked_at.is_(None))
                                ).mappings().all()
        return [_key(r) for r in rows]

    def touch(self, used: dict[str, datetime]) -> None:
        if not used:
            return
        with self.engine.begin() as conn:
            for key_id, at in used.items():
                conn.execute(update(api_keys).where(api_keys.c.key_id == key_id)
                             .values(last_used_at=at))

    def key_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(api_keys)
                                    .where(api_keys.c.revoked_at.is_(None))).scalar() or 0)


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        action=row["action"], target=row["target"], tenant=row["tenant_id"],
        actor=row["actor"], actor_tenant=row["actor_tenant"], service=row["service"],
        before=json.loads(row["before_json"]) if row["before_json"] else None,
        after=json.loads(row["after_json"]) if row["after_json"] else None,
        trace_id=row["trace_id"], occurred_at=_utc(row["occurred_at"]) or datetime.now(UTC),
        sequence=row["sequence"])


class SqlAuditLog:
    """llmops_kit.audit.AuditLog on SQLAlchemy (append-only; newest first when queried)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_sync(self, entry: AuditEntry, conn: Connection | None = None) -> None:
        values = dict(
            occurred_at=entry.occurred_at, action=entry.action, target=entry.target,
            tenant_id=entry.tenant, actor=entry.actor, actor_tenant=entry.actor_tenant,
            service=entry.service, before_json=_json(entry.before),
            after_json=_json(entry.after), trace_id=entry.trace_id)
        if conn is not None:
            conn.execute(audit_log.insert().values(**values))
            return
        with writer(self.engine).begin() as own:
            own.execute(audit_log.insert().values(**values))

    async def record(self, entry: AuditEntry) -> None:
        await asyncio.to_thread(self.record_sync, entry)

    def query_sync(self, tenant: str | None = None, action: str | None = None,
                   since: datetime | None = None, limit: int = 100) -> list[AuditEntry]:
        query = select(audit_log).order_by(audit_log.c.sequence.desc()).limit(
            max(1, min(limit, 1000)))
        if tenant:
            query = query.where(audit_log.c.tenant_id == tenant)
        if action:
            query = query.where(audit_log.c.action == action)
        if since is not None:
            query = query.where(audit_log.c.occurred_at >= since)
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(query).mappings()]

    async def query(self, tenant: str | None = None, action: str | None = None,
                    since: datetime | None = None, limit: int = 100) -> list[AuditEntry]:
        return await asyncio.to_thread(self.query_sync, tenant, action, since, limit)
