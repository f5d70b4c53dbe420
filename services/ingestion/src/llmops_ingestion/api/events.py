"""Kafka consumers of the ingestion service."""

from __future__ import annotations

from llmops.ingestion.v1 import events_pb2
from llmops.vectorstore.v1 import events_pb2 as vs_events
from llmops_ingestion.api.convert import incoming
from llmops_ingestion.domain.errors import InvalidDocument
from llmops_ingestion.domain.service import IngestionService
from llmops_kit import events
from llmops_kit.context import bound
from llmops_kit.errors import PoisonMessage
from llmops_kit.kafka import Batch, EventBus


class IngestionHandlers:
    """The batch handlers of the ingestion service's subscriptions (see register)."""

    def __init__(self, service: IngestionService) -> None:
        self.service = service

    async def on_submitted(self, batch: Batch[events_pb2.DocumentSubmitted]) -> None:
        for item in batch.items:
            env = item.event.envelope
            with bound(env.tenant_id, env.trace_id):
                try:
                    doc = self.service.prepare(incoming(env.tenant_id, item.event.document))
                except InvalidDocument as exc:
                    await batch.dead_letter(item, PoisonMessage(exc.reason, exc.message))
                    continue
                await self.service.submit(doc)

    async def on_deleted(self, batch: Batch[events_pb2.DocumentDeleted]) -> None:
        for item in batch.items:
            ev = item.event
            try:
                await self.service.apply_external_delete(
                    ev.envelope.tenant_id, ev.document_id, ev.up_to_version
                )
            except InvalidDocument as exc:  # retrying would never help: dead-letter it
                await batch.dead_letter(item, PoisonMessage(exc.reason, exc.message))

    async def on_indexed(self, batch: Batch[vs_events.ChunksIndexed]) -> None:
        for item in batch.items:
            ev = item.event
            try:
                await self.service.on_indexed(
                    ev.envelope.tenant_id, ev.document_id, ev.version, ev.batch_index,
                    len(ev.chunk_ids),
                )
            except InvalidDocument as exc:
                await batch.dead_letter(item, PoisonMessage(exc.reason, exc.message))


def register(
    bus: EventBus, handlers: IngestionHandlers, max_records: int,
    submitted: events.EventType[events_pb2.DocumentSubmitted] = events.DOCUMENT_SUBMITTED,
    group: str = "ingestion",
) -> None:
    """`submitted` and `group` are the platform's; tests pass their own to stay isolated."""
    bus.subscribe_batch(submitted, group, handlers.on_submitted,
                        max_records=max_records)
    bus.subscribe_batch(events.DOCUMENT_DELETED, "ingestion-deletes", handlers.on_deleted)
    bus.subscribe_batch(events.CHUNKS_INDEXED, "ingestion-status", handlers.on_indexed,
                        max_records=256)
