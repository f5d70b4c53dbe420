"""The platform database (tenants, keys, audit log) and the key resolver on it: one body per
behaviour, run on SQLite and on Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine

from llmops_kit.audit import AuditEntry
from llmops_kit.auth import Principal, Role
from llmops_kit.errors import AlreadyExists, Unauthenticated
from llmops_kit.key_resolver import KeyResolver
from llmops_kit.keys import ApiKey, new_key
from llmops_kit.sql_auth import SqlAuditLog, SqlKeyStore, open_engine

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/platform.db"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    yield f"{base}?options={quote(f'-csearch_path={schema}')}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


@pytest.fixture
def store(url: str) -> Iterator[SqlKeyStore]:
    engine = open_engine(url)
    yield SqlKeyStore(engine)
    engine.dispose()


def _key(tenant: str = "acme", role: Role = Role.MEMBER, expires_at: datetime | None = None
         ) -> tuple[ApiKey, str]:
    key_id, full, digest = new_key()
    return ApiKey(key_id, tenant, role, "ci", T0, expires_at, secret_hash=digest), full


def test_tenants(store: SqlKeyStore) -> None:
    g0 = store.generation()
    store.create_tenant("globex", "Globex", T0)
    store.create_tenant("acme", "Acme Corp", T0)
    assert store.generation() == g0 + 2
    with pytest.raises(AlreadyExists) as err:
        store.create_tenant("acme", "again", T0)
    assert err.value.reason == "TENANT_EXISTS"
    assert [(t.tenant_id, t.display_name, t.created_at) for t in store.list_tenants()] == [
        ("acme", "Acme Corp", T0), ("globex", "Globex", T0)]
    assert store.get_tenant("nope") is None


def test_keys_are_stored_hashed_and_revoked(store: SqlKeyStore) -> None:
    store.create_tenant("acme", "", T0)
    expiry = T0 + timedelta(days=30)
    record, full = _key(expires_at=expiry)
    g0 = store.generation()
    public = store.create_key(record)
    assert public.secret_hash == "" and store.generation() == g0 + 1
    [active] = store.active_keys()
    assert active.secret_hash == record.secret_hash != full
    assert (active.key_id, active.tenant, active.role, active.expires_at) == (
        record.key_id, "acme", Role.MEMBER, expiry)
    assert [k.key_id for k in store.list_keys("acme", False)] == [record.key_id]
    assert all(k.secret_hash == "" for k in store.list_keys(None, True))

    now = T0 + timedelta(hours=1)
    before, after = store.revoke_key(record.key_id, now) or (None, None)
    assert before is not None and after is not None
    assert (before.revoked_at, after.revoked_at) == (None, now)
    assert store.generation() == g0 + 2
    assert store.active_keys() == [] and store.list_keys("acme", False) == []
    assert [k.revoked_at for k in store.list_keys("acme", True)] == [now]
    again = store.revoke_key(record.key_id, now + timedelta(hours=1))
    assert again is not None and again[0].revoked_at == now  # revoked once, not moved
    assert store.revoke_key("000000000000", now) is None


def test_last_used_does_not_move_the_generation(store: SqlKeyStore) -> None:
    record, _ = _key()
    store.create_key(record)
    g = store.generation()
    used = T0 + timedelta(minutes=5)
    store.touch({record.key_id: used})
    assert store.generation() == g
    got = store.get_key(record.key_id)
    assert got is not None and got.last_used_at == used


def test_deleting_a_tenant_revokes_its_keys(store: SqlKeyStore) -> None:
    store.create_tenant("acme", "", T0)
    store.create_tenant("globex", "", T0)
    a1, _ = _key("acme")
    a2, _ = _key("acme", Role.MAINTAINER)
    g1, _ = _key("globex")
    for k in (a1, a2, g1):
        store.create_key(k)
    tenant, revoked = store.delete_tenant("acme", T0 + timedelta(days=1))
    assert tenant is not None and tenant.tenant_id == "acme"
    assert sorted(k.key_id for k in revoked) == sorted([a1.key_id, a2.key_id])
    assert [k.key_id for k in store.active_keys()] == [g1.key_id]
    assert [t.tenant_id for t in store.list_tenants()] == ["globex"]
    assert store.delete_tenant("acme", T0) == (None, [])


async def test_audit_log_records_and_filters(url: str) -> None:
    engine = open_engine(url)
    audit = SqlAuditLog(engine)
    for i, (action, tenant) in enumerate([("tenant.create", "acme"), ("key.create", "acme"),
                                          ("key.create", "globex")]):
        await audit.record(AuditEntry(
            action=action, target=f"t{i}", tenant=tenant, actor="k1", actor_tenant="platform",
            service="admin", before=None if i == 0 else {"n": i - 1}, after={"n": i},
            trace_id=f"tr{i}", occurred_at=T0 + timedelta(minutes=i)))
    newest_first = await audit.query()
    assert [(e.sequence, e.action, e.target) for e in newest_first] == [
        (3, "key.create", "t2"), (2, "key.create", "t1"), (1, "tenant.create", "t0")]
    first = newest_first[-1]
    assert (first.before, first.after, first.actor, first.trace_id, first.occurred_at) == (
        None, {"n": 0}, "k1", "tr0", T0)
    assert [e.target for e in await audit.query(tenant="acme")] == ["t1", "t0"]
    assert [e.target for e in await audit.query(action="key.create", tenant="acme")] == ["t1"]
    assert [e.target for e in await audit.query(since=T0 + timedelta(minutes=1))] == ["t2", "t1"]
    assert [e.target for e in await audit.query(limit=1)] == ["t2"]
    engine.dispose()


async def test_resolver_follows_the_store(store: SqlKeyStore) -> None:
    resolver = KeyResolver(store, {"static-admin": Principal("platform", Role.ADMIN, "bootstrap")},
                           refresh_seconds=0.05)
    await resolver.start()
    try:
        record, full = _key("acme", Role.MAINTAINER)
        with pytest.raises(Unauthenticated) as err:
            resolver.resolve(full)
        assert err.value.reason == "INVALID_API_KEY"
        store.create_key(record)
        assert await resolver.refresh() is True
        assert await resolver.refresh() is False  # nothing changed: no reload
        assert resolver.resolve(full) == Principal("acme", Role.MAINTAINER, record.key_id)
        assert resolver.resolve("static-admin").role is Role.ADMIN

        key_id, secret = full.split("_", 2)[1:]
        with pytest.raises(Unauthenticated) as err:
            resolver.resolve(f"lk_{key_id}_{'x' * len(secret)}")  # right id, wrong secret
        assert err.value.reason == "INVALID_API_KEY"

        store.revoke_key(record.key_id, datetime.now(UTC))
        await resolver.refresh()
        with pytest.raises(Unauthenticated) as err:
            resolver.resolve(full)
        assert err.value.reason == "INVALID_API_KEY" and full not in str(err.value)

        expired, expired_key = _key("acme", expires_at=datetime.now(UTC) - timedelta(seconds=1))
        store.create_key(expired)
        await resolver.refresh()
        with pytest.raises(Unauthenticated) as err:
            resolver.resolve(expired_key)
        assert err.value.reason == "KEY_EXPIRED" and expired_key not in str(err.value)
        assert expired.key_id in err.value.message
    finally:
        await resolver.stop()


async def test_resolver_records_last_use_at_most_once_a_minute(store: SqlKeyStore) -> None:
    record, full = _key()
    store.create_key(record)
    resolver = KeyResolver(store, {}, refresh_seconds=0.05)
    await resolver.start()
    resolver.resolve(full)
    resolver.resolve(full)
    await resolver.stop()  # flushes
    got = store.get_key(record.key_id)
    assert got is not None and got.last_used_at is not None
    assert resolver._last_touch[record.key_id] == got.last_used_at
