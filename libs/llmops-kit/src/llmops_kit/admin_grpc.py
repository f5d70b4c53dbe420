"""AdminService at the gRPC edge: proto <-> llmops_kit.admin, and the TenantDeleted publisher.

Hosted by the model-registry process (its bootstrap adds it next to the registry servicer).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from llmops.admin.v1 import admin_pb2, admin_pb2_grpc
from llmops_kit import events
from llmops_kit.admin import Admin
from llmops_kit.audit import AuditEntry
from llmops_kit.auth import Role
from llmops_kit.kafka import EventBus
from llmops_kit.keys import ApiKey, Tenant

SERVICE_FULL_NAME = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
# The edge's table; Admin refines it (a maintainer manages only its own tenant's member keys).
ROLES = {
    "CreateTenant": Role.ADMIN, "ListTenants": Role.ADMIN, "DeleteTenant": Role.ADMIN,
    "ListAuditEntries": Role.ADMIN,
    "CreateKey": Role.MAINTAINER, "ListKeys": Role.MAINTAINER, "RevokeKey": Role.MAINTAINER,
}
ROLE_TO_PB = {Role.MEMBER: admin_pb2.ROLE_MEMBER, Role.MAINTAINER: admin_pb2.ROLE_MAINTAINER,
              Role.ADMIN: admin_pb2.ROLE_ADMIN}
ROLE_FROM_PB = {v: k for k, v in ROLE_TO_PB.items()}


class BusTenantDeletedPublisher:
    def __init__(self, bus: EventBus, producer: str) -> None:
        self.bus = bus
        self.producer = producer

    async def tenant_deleted(self, tenant_id: str) -> None:
        event = admin_pb2.TenantDeleted(
            envelope=events.make_envelope(self.producer, tenant=tenant_id), tenant_id=tenant_id)
        await self.bus.publish(events.TENANT_DELETED, event, tenant_id.encode())


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def tenant_pb(tenant: Tenant) -> admin_pb2.Tenant:
    return admin_pb2.Tenant(tenant_id=tenant.tenant_id, display_name=tenant.display_name,
                            created_at=_ts(tenant.created_at))


def key_pb(key: ApiKey) -> admin_pb2.ApiKey:
    return admin_pb2.ApiKey(
        key_id=key.key_id, tenant_id=key.tenant, role=ROLE_TO_PB[key.role],
        description=key.description, created_at=_ts(key.created_at),
        expires_at=_ts(key.expires_at), last_used_at=_ts(key.last_used_at),
        revoked_at=_ts(key.revoked_at))


def _json(value: dict[str, Any] | None) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, default=str)


def entry_pb(entry: AuditEntry) -> admin_pb2.AuditEntry:
    return admin_pb2.AuditEntry(
        sequence=entry.sequence, occurred_at=_ts(entry.occurred_at), actor=entry.actor,
        actor_tenant=entry.actor_tenant, tenant_id=entry.tenant, action=entry.action,
        target=entry.target, before_json=_json(entry.before), after_json=_json(entry.after),
        service=entry.service, trace_id=entry.trace_id)


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, admin: Admin) -> None:
        self.admin = admin

    async def CreateTenant(self, request: Any, context: grpc.aio.ServicerContext
                           ) -> admin_pb2.Tenant:
        return tenant_pb(await self.admin.create_tenant(request.tenant_id, request.display_name))

    async def ListTenants(self, request: Any, context: grpc.aio.ServicerContext
                          ) -> admin_pb2.ListTenantsResponse:
        return admin_pb2.ListTenantsResponse(
            tenants=[tenant_pb(t) for t in await self.admin.list_tenants()])

    async def DeleteTenant(self, request: Any, context: grpc.aio.ServicerContext
                           ) -> admin_pb2.DeleteTenantResponse:
        revoked = await self.admin.delete_tenant(request.tenant_id)
        return admin_pb2.DeleteTenantResponse(tenant_id=request.tenant_id,
                                              revoked_keys=len(revoked))

    async def CreateKey(self, request: Any, context: grpc.aio.ServicerContext
                        ) -> admin_pb2.CreatedKey:
        role = ROLE_FROM_PB.get(request.role, Role.MEMBER)  # unspecified: a member key
        key, secret = await self.admin.create_key(request.tenant_id, role, request.description,
                                                  request.ttl_seconds)
        return admin_pb2.CreatedKey(key=key_pb(key), secret=secret)

    async def ListKeys(self, request: Any, context: grpc.aio.ServicerContext
                       ) -> admin_pb2.ListKeysResponse:
        keys = await self.admin.list_keys(request.tenant_id, request.include_revoked)
        return admin_pb2.ListKeysResponse(keys=[key_pb(k) for k in keys])

    async def RevokeKey(self, request: Any, context: grpc.aio.ServicerContext
                        ) -> admin_pb2.ApiKey:
        return key_pb(await self.admin.revoke_key(request.key_id))

    async def ListAuditEntries(self, request: Any, context: grpc.aio.ServicerContext
                               ) -> admin_pb2.ListAuditEntriesResponse:
        since = (request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None)
        entries = await self.admin.audit_entries(request.tenant_id, request.action, since,
                                                 request.limit)
        return admin_pb2.ListAuditEntriesResponse(entries=[entry_pb(e) for e in entries])
