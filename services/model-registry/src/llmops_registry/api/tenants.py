"""TenantDeleted in: the registry removes what it keeps of the tenant (ports.TenantData)."""

from __future__ import annotations

from llmops.admin.v1 import admin_pb2
from llmops_kit import events
from llmops_kit.kafka import EventBus
from llmops_kit.tenants import subscribe_tenant_deleted
from llmops_registry.ports import TenantData

GROUP = "model-registry-tenants"


def register(bus: EventBus, data: TenantData, group: str = GROUP,
             event_type: events.EventType[admin_pb2.TenantDeleted] = events.TENANT_DELETED,
             ) -> None:
    # One group for every replica: they share the database.
    subscribe_tenant_deleted(bus, group, data.delete_tenant_data, "registry-sql", event_type)
