"""Consumers: every platform topic and every `.dlq` topic into ClickHouse.

One raw batch consumer (the kit's BatchConsumer, group `observability`) over every topic: the
records of each topic go through the kit's Delivery (undecodable records dead-lettered,
failures retried in place, a failing record isolated), and the batch is acked when every
topic's part was handled, or rewound. (A subscriber per topic in one group would be ~30
members rebalancing each other.) Each topic's part becomes one insert per table, and the
batch is acked only after the inserts returned (at least once; ReplacingMergeTree turns
replays into nothing under FINAL).
Deletions (TenantDeleted, DocumentDeleted) run after the rest of their batch is written, so
the rows they cover are there to delete.

Pipelined: while a batch is written (the insert runs in a worker thread), the next one is
decoded and mapped to rows (`Writer.prepare`, pure); it is written only after the one before
it was settled, and the rows of deleted tenants are dropped at write time, so a deletion in
one batch covers the rows of the next.

Dead-letter topics carry whatever could not be handled, so they are consumed raw: each record
is counted from the kit's `x-dlq-*` headers, never decoded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiokafka import ConsumerRecord
from google.protobuf.message import Message

from llmops.admin.v1 import admin_pb2
from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops_kit import events, topics
from llmops_kit.delivery import Delivery, Prepared, Received
from llmops_kit.errors import PoisonMessage
from llmops_kit.events import EventType
from llmops_kit.kafka import Batch, EventBus
from llmops_kit.tenants import check_tenant_id
from llmops_observability.api.mapping import (
    MappingOptions,
    add_dead_letter,
    add_event,
    occurred,
)
from llmops_observability.rows import Rows, to_ms

log = logging.getLogger(__name__)

_DELETIONS = (admin_pb2.TenantDeleted, ingestion_events.DocumentDeleted)

# A failed dead-letter batch waits this long before it is redelivered (no hot loop while
# ClickHouse is down).
DLQ_RETRY_SECONDS = 1.0
TOMBSTONE_REFRESH_SECONDS = 5.0


class Store(Protocol):
    async def write(self, rows: Rows) -> dict[str, int]: ...

    async def delete_tenant(self, tenant: str, deleted_at: datetime) -> int: ...

    async def deleted_tenants(self) -> dict[str, datetime]: ...

    async def delete_document(self, tenant: str, document_id: str, up_to_version: int) -> int: ...


@dataclass
class Mapped:
    """A batch's rows and what it asks to delete, made before its turn to be written."""

    rows: Rows
    deletions: list[tuple[str, Any]]
    # TenantDeleted events without a valid tenant: dead-lettered when the batch is written.
    bad: list[tuple[Received[Message], PoisonMessage]]


class Writer:
    """Turns consumed batches into rows and writes them. Rows of a deleted tenant from before
    its deletion are dropped (a redelivery after the deletion must not bring them back); the
    list of deleted tenants is re-read from the store every TOMBSTONE_REFRESH_SECONDS, so
    deletions seen by another replica count too."""

    def __init__(self, store: Store, options: MappingOptions) -> None:
        self.store = store
        self.options = options
        self._deleted: dict[str, int] = {}  # tenant -> deleted at, epoch ms
        self._deleted_read_at = -math.inf

    async def _drop_deleted(self, rows: Rows) -> None:
        if time.monotonic() - self._deleted_read_at > TOMBSTONE_REFRESH_SECONDS:
            read = {t: to_ms(at) for t, at in (await self.store.deleted_tenants()).items()}
            self._deleted = {**self._deleted, **read}
            self._deleted_read_at = time.monotonic()
        if self._deleted:
            dropped = rows.drop_deleted(self._deleted)
            if dropped:
                log.info("dropped %d rows of deleted tenants", dropped)

    def prepare(self, items: list[Received[Message]]) -> Mapped:
        """The rows of `items` (pure: may run while the batch before is being written)."""
        rows = Rows()
        deletions: list[tuple[str, Any]] = []
        bad: list[tuple[Received[Message], PoisonMessage]] = []
        options = self.options
        for item in items:
            event = item.event
            if type(event) in _DELETIONS:
                if isinstance(event, admin_pb2.TenantDeleted):
                    try:
                        check_tenant_id(event.tenant_id)
                    except PoisonMessage as exc:
                        bad.append((item, exc))
                        continue
                    deletions.append(("tenant", (event.tenant_id,
                                                 occurred(event.envelope, item.record))))
                elif isinstance(event, ingestion_events.DocumentDeleted) and event.document_id:
                    deletions.append(("document", (item.tenant, event.document_id,
                                                   event.up_to_version)))
            add_event(rows, item.record.topic, event, item.record, options)
        return Mapped(rows, deletions, bad)

    async def on_batch(self, batch: Batch[Message]) -> None:
        mapped = batch.prepared if isinstance(batch.prepared, Mapped) else \
            self.prepare(batch.items)
        for item, exc in mapped.bad:
            await batch.dead_letter(item, exc)
        rows = mapped.rows
        await self._drop_deleted(rows)
        written = await self.store.write(rows) if rows else {}
        for kind, what in mapped.deletions:
            if kind == "tenant":
                tenant, deleted_at = what
                removed = await self.store.delete_tenant(tenant, deleted_at)
                at = to_ms(deleted_at)
                self._deleted[tenant] = max(at, self._deleted.get(tenant, at))
                log.info("tenant data deleted", extra={"store": "clickhouse", "removed": removed,
                                                       "tenant": tenant})
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
        await self._drop_deleted(rows)
        if rows:
            await self.store.write(rows)


Part = tuple[str, tuple[ConsumerRecord[Any, Any], ...], Prepared[Any] | None]


def register(bus: EventBus, writer: Writer, group: str, max_records: int,
             batch_timeout_ms: int,
             event_types: tuple[EventType[Any], ...] | None = None) -> list[str]:
    """Subscribes `writer` to every topic of `event_types` (default: every platform topic)
    and their dead-letter topics, as one raw consumer of group `group` (the kit's
    BatchConsumer: the next batch is decoded and mapped while this one is written); returns
    the topics to create (their `.dlq` topics are created with them)."""
    types = event_types if event_types is not None else tuple(
        events.REGISTRY[t] for t in topics.ALL)
    window = bus.settings.retry_window_seconds
    # The kit's delivery per topic: decoding, dead letters, retries, isolation of a bad record
    # (and the kit's record and dead-letter metrics, where the bus has them).
    metrics = getattr(bus, "metrics", None)
    deliveries = {et.topic: Delivery(bus, et, group, writer.on_batch, window, metrics,
                                     prepare_items=writer.prepare) for et in types}
    dlq_topics = [topics.dead_letter(et.topic) for et in types]
    # Deletions after everything else of the same batch, so rows they cover are written first.
    last = {et.topic for et in types if et.message in _DELETIONS}

    def prepare(records: tuple[ConsumerRecord[Any, Any], ...]) -> list[Part]:
        by_topic: dict[str, list[ConsumerRecord[Any, Any]]] = defaultdict(list)
        for record in records:
            by_topic[record.topic].append(record)
        parts: list[Part] = []
        for topic in sorted(by_topic, key=lambda t: t in last):
            part = tuple(by_topic[topic])
            delivery = deliveries.get(topic)
            parts.append((topic, part, delivery.prepare(part) if delivery is not None else None))
        return parts

    async def handle(_: tuple[ConsumerRecord[Any, Any], ...], parts: list[Part]) -> bool:
        # False (a failure past the retry window, the bus stopping) -> the batch is rewound.
        for topic, part, prepared in parts:
            delivery = deliveries.get(topic)
            ok = await (delivery.run(part, prepared) if delivery is not None
                        else _count_dead_letters(bus, writer, group, part, window))
            if not ok:
                return False
        return True

    bus.subscribe_raw([*deliveries, *dlq_topics], group, prepare, handle,
                      max_records=max_records, batch_timeout_ms=batch_timeout_ms)
    return [et.topic for et in types]


async def _count_dead_letters(bus: EventBus, writer: Writer, group: str,
                              records: tuple[ConsumerRecord[Any, Any], ...],
                              window: float) -> bool:
    """Writes dead_letters rows, retrying through an outage for up to `window` seconds."""
    deadline = time.monotonic() + window
    while True:
        try:
            await writer.on_dead_letters(records)
            await bus.report(f"{group}-dead-letters", healthy=True)
            return True
        except Exception:
            log.warning("dead letters not written; retrying", exc_info=True)
            await bus.report(f"{group}-dead-letters", healthy=False)
            if bus.stopping or time.monotonic() + DLQ_RETRY_SECONDS > deadline:
                return False
            await asyncio.sleep(DLQ_RETRY_SECONDS)

