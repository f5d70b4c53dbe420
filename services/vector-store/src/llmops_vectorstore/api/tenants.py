"""TenantDeleted in: the tenant's Weaviate tenant (chunks and document states) is removed.

Two consumers: one group for all replicas removes the Weaviate tenant once (they share the
server); a group per replica drops that replica's cached "tenant exists" note, so no replica
keeps writing to a tenant that is gone or misses that a later tenant of the same id is new.
"""

from __future__ import annotations

from typing import Protocol

from llmops.admin.v1 import admin_pb2
from llmops_kit import events
from llmops_kit.kafka import EventBus
from llmops_kit.tenants import replica_group, subscribe_tenant_deleted

GROUP = "vector-store-tenants"


class TenantStore(Protocol):
    async def delete_tenant(self, tenant: str) -> int: ...

    async def forget_tenant(self, tenant: str) -> int: ...


def register(bus: EventBus, store: TenantStore, group: str = GROUP,
             event_type: events.EventType[admin_pb2.TenantDeleted] = events.TENANT_DELETED,
             ) -> None:
    subscribe_tenant_deleted(bus, group, store.delete_tenant, "weaviate", event_type)
    subscribe_tenant_deleted(bus, replica_group(f"{group}-cache"), store.forget_tenant,
                             "weaviate-tenant-cache", event_type)
