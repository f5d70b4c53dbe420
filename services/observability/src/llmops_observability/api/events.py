"""Consumers: every platform topic and every `.dlq` topic into ClickHouse.

One batch subscriber per topic (the kit's: undecodable records are dead-lettered, failures
retried, then rewound), all in one consumer group. Each batch becomes one insert per table and
is acked only after the inserts returned (at least once; ReplacingMergeTree turns replays into
nothing under FINAL). Deletions (TenantDeleted, DocumentDeleted) run after their batch's rows
are written, so the deletion event's own rows are covered by it.

Dead-letter topics carry whatever could not be handled, so they are consumed raw: each record
is counted from the kit's `x-dlq-*` headers, never decoded.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from aiokafka import ConsumerRecord
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from google.protobuf.message import Message

from llmops.admin.v1 import admin_pb2
from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops_kit import events, topics
from llmops_kit.errors import PoisonMessage
from llmops_kit.events import EventType
from llmops_kit.kafka import Batch, EventBus
from llmops_kit.tenants import check_tenant_id
from llmops_observability.api.mapping import MappingOptions, add_dead_letter, add_event
from llmops_observability.rows import Rows

log = logging.getLogger(__name__)

# A failed dead-letter batch waits this long before it is redelivered (no hot loop while
# ClickHouse is down).
DLQ_RETRY_SECONDS = 1.0


class Store(Protocol):
    async def write(self, rows: Rows) -> dict[str, int]: ...

    async def delete_tenant(self, tenant: str) -> int: ...

    async def delete_document(self, tenant: str, document_id: str, up_to_version: int) -> int: ...


class Writer:
    """Turns consumed batches into rows and writes them."""

    def __init__(self, store: Store, options: MappingOptions) -> None:
        self.store = store
        self.options = options

    async def on_batch(self, batch: Batch[Message]) -> None:
        rows = Rows()
        deletions: list[tuple[str, Any]] = []
        for item in batch.items:
            event = item.event
            if isinstance(event, admin_pb2.TenantDeleted):
                try:
                    check_tenant_id(event.tenant_id)
                except PoisonMessage as exc:
                    await batch.dead_letter(item, exc)
                    continue
                deletions.append(("tenant", event.tenant_id))
            elif isinstance(event, ingestion_events.DocumentDeleted) and event.document_id:
                deletions.append(("document", (item.tenant, event.document_id,
                                               event.up_to_version)))
            add_event(rows, item.record.topic, event, item.record, self.options)
        written = await self.store.write(rows) if rows else {}
        for kind, what in deletions:
            if kind == "tenant":
                removed = await self.store.delete_tenant(what)
                log.info("tenant data deleted", extra={"store": "clickhouse", "removed": removed,
                                                       "tenant": what})
            else:
                tenant, document_id, up_to = what
                removed = await self.store.delete_document(tenant, document_id, up_to)
                log.info("document rows deleted", extra={"removed": removed,
                                                         "document_id": document_id})
        log.debug("wrote %s", written)

    async def on_dead_letters(self, records: tuple[ConsumerRecord[Any, Any], ...]) -> None:
        rows = Rows()
        for record in records:
            add_dead_letter(rows, record)
        if rows:
            await self.store.write(rows)


def register(bus: EventBus, writer: Writer, group: str, max_records: int,
             batch_timeout_ms: int,
             event_types: tuple[EventType[Any], ...] | None = None) -> list[str]:
    """Subscribes `writer` to every topic of `event_types` (default: every platform topic)
    and their dead-letter topics; returns the topics to create."""
    types = event_types if event_types is not None else tuple(
        events.REGISTRY[t] for t in topics.ALL)
    for event_type in types:
        bus.subscribe_batch(event_type, group, writer.on_batch, max_records=max_records,
                            batch_timeout_ms=batch_timeout_ms)
    subscribe_dead_letters(bus, writer, group,
                           [topics.dead_letter(t.topic) for t in types], max_records,
                           batch_timeout_ms)
    return [t.topic for t in types]


def subscribe_dead_letters(bus: EventBus, writer: Writer, group: str, dlq_topics: list[str],
                           max_records: int, batch_timeout_ms: int) -> None:
    """One raw batch subscriber over every `.dlq` topic: acked after the insert, rewound
    (redelivered) when it fails."""

    async def consume(_: list[bytes], msg: KafkaMessage) -> None:
        raw = msg.raw_message
        records: tuple[ConsumerRecord[Any, Any], ...] = raw if isinstance(raw, tuple) else (raw,)
        try:
            await writer.on_dead_letters(records)
        except Exception:
            log.warning("dead-letter batch not written; it will be redelivered", exc_info=True)
            await bus.report(f"{group}-dead-letters", healthy=False)
            await asyncio.sleep(DLQ_RETRY_SECONDS)
            await _settle(msg, ack=False)
            return
        await bus.report(f"{group}-dead-letters", healthy=True)
        await _settle(msg, ack=True)

    bus.broker.subscriber(
        *dlq_topics, group_id=group, batch=True, max_records=max_records,
        batch_timeout_ms=batch_timeout_ms, ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=bus.settings.consumer_fetch_bytes,
        fetch_max_bytes=max(50 * 1024 * 1024, bus.settings.consumer_fetch_bytes),
        session_timeout_ms=10_000, heartbeat_interval_ms=2_000,
    )(consume)


async def _settle(msg: KafkaMessage, ack: bool) -> None:
    try:
        await (msg.ack() if ack else msg.nack())
    except Exception:
        log.warning("could not %s a dead-letter batch; it will be redelivered",
                    "ack" if ack else "nack", exc_info=True)
