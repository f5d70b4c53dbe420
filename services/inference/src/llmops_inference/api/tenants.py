"""TenantDeleted in: this replica's cached answers for the tenant are dropped.

Every replica holds its own cache, so every replica must see every TenantDeleted: the consumer
group is unique per process (llmops_kit.tenants.replica_group). A new replica starts with an
empty cache, so replaying old deletions from the topic's start costs nothing.
"""

from __future__ import annotations

from llmops.admin.v1 import admin_pb2
from llmops_inference.domain.cache import AnswerCache
from llmops_kit import events
from llmops_kit.kafka import EventBus
from llmops_kit.tenants import replica_group, subscribe_tenant_deleted


def register(bus: EventBus, cache: AnswerCache, group_base: str,
             event_type: events.EventType[admin_pb2.TenantDeleted] = events.TENANT_DELETED,
             ) -> str:
    """Subscribes with a group of this process's own; returns the group id."""
    group = replica_group(f"{group_base}-tenants")

    async def drop(tenant: str) -> int:
        return cache.delete_tenant(tenant)

    subscribe_tenant_deleted(bus, group, drop, "answer-cache", event_type)
    return group
