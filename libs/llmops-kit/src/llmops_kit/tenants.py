"""Tenant deletion: every service that keeps a tenant's data consumes TenantDeleted one way.

AdminService.DeleteTenant publishes TenantDeleted (topic llmops.admin.tenant-deleted.v1). Each
service registers one consumer with `subscribe_tenant_deleted(bus, group, eraser.delete_tenant,
"<store>")`; the eraser removes everything of that tenant from one store and returns how many
items it removed. Erasers must be idempotent: delivery is at least once, and a redelivered event
(or one replayed by a new consumer group) must simply find nothing left to delete.

Shared stores (a database, Weaviate) need one consumer group for all replicas of a service.
Per-process state (an in-memory cache) needs every replica to see every event: use
`replica_group(base)`, a group of its own per process.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from llmops.admin.v1 import admin_pb2
from llmops_kit import events
from llmops_kit.context import bound
from llmops_kit.errors import PoisonMessage
from llmops_kit.kafka import Batch, EventBus

log = logging.getLogger(__name__)

MAX_TENANT_ID = events.MAX_TENANT_CHARS


class TenantEraser(Protocol):
    async def delete_tenant(self, tenant: str) -> int:
        """Removes every item of `tenant` from this store; returns how many were removed."""
        ...


def check_tenant_id(tenant: str) -> None:
    """PoisonMessage unless `tenant` can name a tenant (an empty one would mean "everyone")."""
    if not tenant or not tenant.strip():
        raise PoisonMessage("MISSING_TENANT_ID", "TenantDeleted has no tenant_id")
    if len(tenant) > MAX_TENANT_ID or not tenant.isprintable():
        raise PoisonMessage("BAD_TENANT_ID",
                            f"tenant_id must be 1-{MAX_TENANT_ID} printable characters")


def subscribe_tenant_deleted(
    bus: EventBus, group_id: str, erase: Callable[[str], Awaitable[int]], store: str,
    event_type: events.EventType[admin_pb2.TenantDeleted] = events.TENANT_DELETED,
) -> None:
    """Registers the consumer that calls `erase(tenant_id)` for each TenantDeleted event.

    An event without a usable tenant_id goes to the dead-letter topic (MISSING_TENANT_ID,
    BAD_TENANT_ID); an eraser that raises is retried and the batch redelivered (kit bus).
    """

    async def on_deleted(batch: Batch[admin_pb2.TenantDeleted]) -> None:
        for item in batch.items:
            tenant = item.event.tenant_id
            try:
                check_tenant_id(tenant)
            except PoisonMessage as exc:
                await batch.dead_letter(item, exc)
                continue
            with bound(tenant, item.event.envelope.trace_id or None):
                removed = await erase(tenant)
                log.info("tenant data deleted", extra={"store": store, "removed": removed})

    bus.subscribe_batch(event_type, group_id, on_deleted)


def replica_group(base: str) -> str:
    """A consumer group of this process alone, for state that every replica holds a copy of."""
    return f"{base}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
