"""Tenants, keys and the audit log as use cases (AdminService's domain; no protobuf here).

Every call is recorded in the audit log with its actor (the caller's key_id, never a secret)
and the tenant it touched: changes with the state before and after, reads (`tenant.list`,
`key.list`, `audit.read`) with what was asked and how many records were returned. Admins may do everything;
a tenant's maintainers may create, list and revoke its `member` keys (nothing else).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from llmops_kit.audit import AuditEntry, AuditLog
from llmops_kit.auth import Principal, Role, require
from llmops_kit.context import current_trace_id
from llmops_kit.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from llmops_kit.keys import PLATFORM_TENANT, ApiKey, KeyStore, Tenant, check_tenant_id, new_key

MAX_DESCRIPTION = 500
MAX_TTL_SECONDS = 10 * 365 * 24 * 3600


class TenantDeletedPublisher(Protocol):
    async def tenant_deleted(self, tenant_id: str) -> None: ...


def _tenant_dict(tenant: Tenant) -> dict[str, Any]:
    return {**asdict(tenant), "created_at": tenant.created_at.isoformat()}


class Admin:
    def __init__(self, store: KeyStore, audit: AuditLog, publisher: TenantDeletedPublisher,
                 service: str = "admin",
                 on_change: Callable[[], Awaitable[object]] | None = None) -> None:
        self.store = store
        self.audit = audit
        self.publisher = publisher
        self.service = service
        # The hosting process's own key resolver reloads at once; others within a poll.
        self.on_change = on_change

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()

    async def _record(self, actor: Principal, action: str, target: str, tenant: str,
                      before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        await self.audit.record(AuditEntry(
            action=action, target=target, tenant=tenant, actor=actor.key_id or "unknown",
            actor_tenant=actor.tenant, service=self.service, before=before, after=after,
            trace_id=current_trace_id() or ""))

    @staticmethod
    def _own_tenant_id(tenant_id: str) -> str:
        tenant_id = check_tenant_id(tenant_id)
        if tenant_id == PLATFORM_TENANT:
            raise InvalidArgument("RESERVED_TENANT",
                                  f"'{PLATFORM_TENANT}' is the platform's own tenant")
        return tenant_id

    # -- tenants (admin) ----------------------------------------------------------------
    async def create_tenant(self, tenant_id: str, display_name: str) -> Tenant:
        actor = require(Role.ADMIN, "creating a tenant")
        tenant_id = self._own_tenant_id(tenant_id)
        tenant = await asyncio.to_thread(self.store.create_tenant, tenant_id,
                                         display_name[:200], datetime.now(UTC))
        await self._record(actor, "tenant.create", tenant_id, tenant_id, None,
                           _tenant_dict(tenant))
        return tenant

    async def list_tenants(self) -> list[Tenant]:
        actor = require(Role.ADMIN, "listing tenants")
        tenants = await asyncio.to_thread(self.store.list_tenants)
        await self._record(actor, "tenant.list", "", "", None, {"count": len(tenants)})
        return tenants

    async def delete_tenant(self, tenant_id: str) -> list[ApiKey]:
        """Removes the tenant, revokes its keys, publishes TenantDeleted. Idempotent: calling
        it again re-publishes the event (for a publish that failed)."""
        actor = require(Role.ADMIN, "deleting a tenant")
        tenant_id = self._own_tenant_id(tenant_id)
        tenant, revoked = await asyncio.to_thread(self.store.delete_tenant, tenant_id,
                                                  datetime.now(UTC))
        await self._changed()
        await self._record(actor, "tenant.delete", tenant_id, tenant_id,
                           _tenant_dict(tenant) if tenant else None,
                           {"deleted": True, "revoked_keys": [k.key_id for k in revoked]})
        try:
            await self.publisher.tenant_deleted(tenant_id)
        except Exception as exc:
            raise Unavailable(
                "EVENT_NOT_PUBLISHED",
                f"tenant {tenant_id} removed and its keys revoked, but TenantDeleted could not "
                f"be published ({type(exc).__name__}); call DeleteTenant again") from exc
        return revoked

    # -- keys (admin; maintainers for their tenant's member keys) -------------------------
    def _scope(self, actor: Principal, tenant: str, action: str) -> str:
        """The tenant a maintainer may act on (its own), or any for an admin."""
        if actor.can(Role.ADMIN):
            return tenant
        tenant = tenant or actor.tenant
        if tenant != actor.tenant:
            raise PermissionDenied("OTHER_TENANT",
                                   f"{action}: a maintainer acts on its own tenant only")
        return tenant

    async def create_key(self, tenant: str, role: Role, description: str,
                         ttl_seconds: int = 0) -> tuple[ApiKey, str]:
        """The new key's record and the key itself (the only time it is ever returned)."""
        actor = require(Role.MAINTAINER, "creating a key")
        if role is not Role.MEMBER:
            require(Role.ADMIN, f"creating a '{role.value}' key")
        if role is Role.ADMIN:
            tenant = tenant or PLATFORM_TENANT
            if tenant != PLATFORM_TENANT:
                raise InvalidArgument("ADMIN_KEY_TENANT",
                                      f"admin keys belong to the '{PLATFORM_TENANT}' tenant")
        else:
            tenant = self._own_tenant_id(self._scope(actor, tenant, "creating a key"))
            if await asyncio.to_thread(self.store.get_tenant, tenant) is None:
                raise NotFound("TENANT_NOT_FOUND",
                               f"no tenant {tenant!r}: create it first (llmops tenants create)")
        if len(description) > MAX_DESCRIPTION:
            raise InvalidArgument("DESCRIPTION_TOO_LONG",
                                  f"description is over {MAX_DESCRIPTION} characters")
        if not 0 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise InvalidArgument("INVALID_TTL", f"ttl_seconds must be 0..{MAX_TTL_SECONDS}")
        key_id, secret, digest = new_key()
        now = datetime.now(UTC)
        record = await asyncio.to_thread(self.store.create_key, ApiKey(
            key_id, tenant, role, description, now,
            now + timedelta(seconds=ttl_seconds) if ttl_seconds else None, secret_hash=digest))
        await self._changed()
        await self._record(actor, "key.create", key_id, tenant, None, record.as_dict())
        return record, secret

    async def list_keys(self, tenant: str, include_revoked: bool) -> list[ApiKey]:
        actor = require(Role.MAINTAINER, "listing keys")
        tenant = self._scope(actor, tenant, "listing keys")
        keys = await asyncio.to_thread(self.store.list_keys, tenant or None, include_revoked)
        await self._record(actor, "key.list", tenant, tenant, None, {"count": len(keys)})
        return keys

    async def revoke_key(self, key_id: str) -> ApiKey:
        actor = require(Role.MAINTAINER, "revoking a key")
        key = await asyncio.to_thread(self.store.get_key, key_id)
        if key is None:
            raise NotFound("KEY_NOT_FOUND", f"no key {key_id!r}")
        if not actor.can(Role.ADMIN):
            self._scope(actor, key.tenant, "revoking a key")
            if key.role is not Role.MEMBER:
                require(Role.ADMIN, f"revoking a '{key.role.value}' key")
        changed = await asyncio.to_thread(self.store.revoke_key, key_id, datetime.now(UTC))
        if changed is None:
            raise NotFound("KEY_NOT_FOUND", f"no key {key_id!r}")
        before, after = changed
        await self._changed()
        if before.revoked_at is None:
            await self._record(actor, "key.revoke", key_id, key.tenant, before.as_dict(),
                               after.as_dict())
        return after

    async def audit_entries(self, tenant: str, action: str, since: datetime | None,
                            limit: int) -> list[AuditEntry]:
        actor = require(Role.ADMIN, "reading the audit log")
        entries = await self.audit.query(tenant or None, action or None, since, limit or 100)
        # Recorded after the query, so a reader does not see its own read.
        await self._record(actor, "audit.read", tenant, tenant, None,
                           {"action": action, "since": since.isoformat() if since else None,
                            "count": len(entries)})
        return entries
