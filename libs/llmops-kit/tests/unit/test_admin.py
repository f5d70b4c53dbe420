"""AdminService's use cases: who may do what, what is audited, what is published."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops_kit.admin import Admin
from llmops_kit.auth import Principal, Role, principal_var
from llmops_kit.context import bound
from llmops_kit.errors import AlreadyExists, DomainError, InvalidArgument, NotFound, PermissionDenied
from llmops_kit.keys import split_key
from llmops_kit.sql_auth import SqlAuditLog, SqlKeyStore, open_engine

pytestmark = pytest.mark.unit
ADMIN = Principal("platform", Role.ADMIN, "bootstrap")
ACME_MAINTAINER = Principal("acme", Role.MAINTAINER, "k-acme-m")
ACME_MEMBER = Principal("acme", Role.MEMBER, "k-acme-u")


class Changes:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


class Published:
    def __init__(self) -> None:
        self.tenants: list[str] = []
        self.fail = False

    async def tenant_deleted(self, tenant_id: str) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.tenants.append(tenant_id)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Admin, SqlKeyStore, Published]]:
    engine = open_engine(f"sqlite:///{tmp_path}/platform.db")
    store, published = SqlKeyStore(engine), Published()
    admin = Admin(store, SqlAuditLog(engine), published, on_change=Changes())
    yield admin, store, published
    engine.dispose()


def as_(principal: Principal) -> object:
    principal_var.set(principal)
    return principal


async def test_admin_manages_tenants_and_keys_and_everything_is_audited(parts) -> None:
    admin, store, _published = parts
    as_(ADMIN)
    with bound("platform", "trace-1"):
        tenant = await admin.create_tenant("acme", "Acme")
        key, secret = await admin.create_key("acme", Role.MAINTAINER, "ops", 3600)
    assert tenant.tenant_id == "acme" and key.tenant == "acme" and key.role is Role.MAINTAINER
    assert key.expires_at is not None and (key.expires_at - key.created_at).total_seconds() == 3600
    assert split_key(secret) is not None and split_key(secret)[0] == key.key_id  # type: ignore[index]
    assert key.secret_hash == "" and secret not in repr(store.list_keys(None, True))
    with pytest.raises(AlreadyExists):
        await admin.create_tenant("acme", "")
    assert admin.on_change.count == 1  # type: ignore[union-attr]  # the key, not the tenant
    revoked = await admin.revoke_key(key.key_id)
    assert revoked.revoked_at is not None and admin.on_change.count == 2  # type: ignore[union-attr]

    entries = await admin.audit_entries("", "", None, 0)
    assert [(e.action, e.target, e.tenant, e.actor, e.actor_tenant) for e in entries] == [
        ("key.revoke", key.key_id, "acme", "bootstrap", "platform"),
        ("key.create", key.key_id, "acme", "bootstrap", "platform"),
        ("tenant.create", "acme", "acme", "bootstrap", "platform")]
    assert entries[0].before is not None and entries[0].before["revoked_at"] is None
    assert entries[0].after is not None and entries[0].after["revoked_at"] is not None
    assert entries[1].trace_id == "trace-1" and entries[1].after["role"] == "maintainer"
    assert all(secret not in str(e) for e in entries)
    # Reads are audited too (after they ran, so a reader never sees its own read).
    await admin.list_tenants()
    await admin.list_keys("acme", True)
    reads = await admin.audit_entries("", "", None, 3)
    assert [(e.action, e.tenant, e.after) for e in reads] == [
        ("key.list", "acme", {"count": 1}), ("tenant.list", "", {"count": 1}),
        ("audit.read", "", {"action": "", "since": None, "count": 3})]


async def test_delete_tenant_revokes_audits_and_publishes_idempotently(parts) -> None:
    admin, store, published = parts
    as_(ADMIN)
    await admin.create_tenant("acme", "")
    k1, _ = await admin.create_key("acme", Role.MEMBER, "", 0)
    k2, _ = await admin.create_key("acme", Role.MAINTAINER, "", 0)
    revoked = await admin.delete_tenant("acme")
    assert sorted(k.key_id for k in revoked) == sorted([k1.key_id, k2.key_id])
    assert published.tenants == ["acme"] and store.active_keys() == []
    [entry] = await admin.audit_entries("acme", "tenant.delete", None, 10)
    assert entry.before is not None and entry.before["tenant_id"] == "acme"
    assert entry.after == {"deleted": True, "revoked_keys": [k.key_id for k in revoked]}

    published.fail = True
    with pytest.raises(DomainError) as err:
        await admin.delete_tenant("acme")
    assert err.value.reason == "EVENT_NOT_PUBLISHED"
    published.fail = False
    assert await admin.delete_tenant("acme") == []
    assert published.tenants == ["acme", "acme"]


async def test_maintainers_manage_their_own_member_keys_only(parts) -> None:
    admin, _store, _ = parts
    as_(ADMIN)
    await admin.create_tenant("acme", "")
    await admin.create_tenant("globex", "")
    as_(ACME_MAINTAINER)
    key, _ = await admin.create_key("", Role.MEMBER, "for the intern", 0)
    assert key.tenant == "acme"
    with pytest.raises(PermissionDenied) as err:
        await admin.create_key("acme", Role.MAINTAINER, "", 0)
    assert err.value.reason == "ROLE_REQUIRED"
    with pytest.raises(PermissionDenied) as err:
        await admin.create_key("globex", Role.MEMBER, "", 0)
    assert err.value.reason == "OTHER_TENANT"
    assert [k.key_id for k in await admin.list_keys("", False)] == [key.key_id]
    with pytest.raises(PermissionDenied):
        await admin.list_keys("globex", False)
    with pytest.raises(PermissionDenied) as err:
        await admin.create_tenant("initech", "")
    assert err.value.reason == "ROLE_REQUIRED"
    assert (await admin.revoke_key(key.key_id)).revoked_at is not None

    as_(ACME_MEMBER)
    with pytest.raises(PermissionDenied) as err:
        await admin.create_key("acme", Role.MEMBER, "", 0)
    assert err.value.reason == "ROLE_REQUIRED"


async def test_bad_requests_have_stable_reasons(parts) -> None:
    admin, _, _ = parts
    as_(ADMIN)
    for call, reason in [
        (admin.create_tenant("Bad Name", ""), "INVALID_TENANT_ID"),
        (admin.create_tenant("platform", ""), "RESERVED_TENANT"),
        (admin.create_key("ghost", Role.MEMBER, "", 0), "TENANT_NOT_FOUND"),
        (admin.create_key("acme", Role.ADMIN, "", 0), "ADMIN_KEY_TENANT"),
        (admin.revoke_key("nope"), "KEY_NOT_FOUND"),
    ]:
        with pytest.raises((InvalidArgument, NotFound)) as err:
            await call
        assert err.value.reason == reason
    key, _ = await admin.create_key("", Role.ADMIN, "second admin", 0)
    assert (key.tenant, key.role) == ("platform", Role.ADMIN)
