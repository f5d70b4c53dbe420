"""TenantDeleted in: the tenant's jobs, job folders and dataset versions leave the trainer
(domain/tenants.TenantTraining)."""

from __future__ import annotations

from llmops.admin.v1 import admin_pb2
from llmops_kit import events
from llmops_kit.kafka import EventBus
from llmops_kit.tenants import TenantEraser, subscribe_tenant_deleted

GROUP = "trainer-tenants"


def register(bus: EventBus, eraser: TenantEraser, group: str = GROUP,
             event_type: events.EventType[admin_pb2.TenantDeleted] = events.TENANT_DELETED,
             ) -> None:
    # One group for every replica: they share the job database, the jobs folder and the
    # dataset store (a running job is stopped by whichever replica runs it).
    subscribe_tenant_deleted(bus, group, eraser.delete_tenant, "trainer", event_type)
