"""TenantDeleted in: the tenant's documents and indexing progress leave the SQL store."""

from __future__ import annotations

from llmops.admin.v1 import admin_pb2
from llmops_kit import events
from llmops_kit.kafka import EventBus
from llmops_kit.tenants import TenantEraser, subscribe_tenant_deleted

GROUP = "ingestion-tenants"


def register(bus: EventBus, store: TenantEraser, group: str = GROUP,
             event_type: events.EventType[admin_pb2.TenantDeleted] = events.TENANT_DELETED,
             ) -> None:
    # One group for every replica: they share the database.
    subscribe_tenant_deleted(bus, group, store.delete_tenant, "ingestion-sql", event_type)
