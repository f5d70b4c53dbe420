"""ChunkVectors and DocumentDeleted -> Weaviate, then ChunksIndexed.

Each handler returns only after Weaviate has the writes; the kit commits offsets after
that. A Weaviate failure raises, so the kit retries with backoff and finally rewinds.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol, TypeAlias

from llmops.embedding.v1 import events_pb2 as embedding_events
from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops.vectorstore.v1 import events_pb2 as vectorstore_events
from llmops_kit import events
from llmops_kit.errors import DomainError, PoisonMessage
from llmops_kit.events import EventType
from llmops_kit.kafka import Batch, EventBus, Received
from llmops_vectorstore.domain.indexing import Indexer, Outcome, validate_batch
from llmops_vectorstore.domain.model import ChunkRecord, VectorBatch

log = logging.getLogger(__name__)

PRODUCER = "vector-store"
_EVENT_ID_NAMESPACE = uuid.UUID("d2a1f9b4-3c7e-4e0a-8b6f-1e2d3c4b5a69")

VectorsBatch: TypeAlias = Batch[embedding_events.ChunkVectors]
VectorsItem: TypeAlias = Received[embedding_events.ChunkVectors]
DeletedBatch: TypeAlias = Batch[ingestion_events.DocumentDeleted]
IndexedEvent: TypeAlias = vectorstore_events.ChunksIndexed
Pending: TypeAlias = tuple[VectorsItem, VectorBatch]


class Publisher(Protocol):
    async def publish_many(
        self, event_type: EventType[IndexedEvent], events: Sequence[tuple[bytes, IndexedEvent]]
    ) -> None: ...


class ModelDimensions(Protocol):
    async def dimensions_of(self, model: str) -> int | None:
        """The vector length a collection of `model` holds (None: none does)."""
        ...


def vector_batch(event: embedding_events.ChunkVectors) -> VectorBatch:
    doc = event.document
    metadata = dict(doc.metadata)
    return VectorBatch(
        document_id=doc.document_id,
        version=doc.version,
        total_chunks=doc.total_chunks,
        batch_index=event.batch_index,
        batch_count=event.batch_count,
        model=event.model,
        chunks=[
            ChunkRecord(
                chunk_id=ec.chunk.chunk_id,
                document_id=doc.document_id,
                document_version=doc.version,
                chunk_index=ec.chunk.index,
                text=ec.chunk.text,
                vector=list(ec.vector),
                title=doc.title,
                source=doc.source,
                metadata=metadata,
                model=event.model,
            )
            for ec in event.chunks
        ],
    )


class IndexingHandlers:
    def __init__(
        self,
        indexer: Indexer,
        publisher: Publisher,
        dimensions: int,
        concurrency: int = 8,
        sink: EventType[IndexedEvent] = events.CHUNKS_INDEXED,
        models: ModelDimensions | None = None,
    ) -> None:
        self.indexer = indexer
        self.publisher = publisher
        self.dimensions = dimensions
        self.concurrency = concurrency
        self.sink = sink
        # Per-model collections: vectors are checked against their own model's length.
        self.models = models

    async def _dimensions(self, event: embedding_events.ChunkVectors) -> int:
        if self.models is None or not event.model:
            return self.dimensions
        known = await self.models.dimensions_of(event.model)
        # Another model's vectors are re-embedded for each collection; they need only be
        # what the event says they are.
        return known if known is not None else event.dimensions or self.dimensions

    async def on_vectors(self, batch: VectorsBatch) -> None:
        # Events of one document stay in order; different documents are written concurrently.
        per_document: dict[tuple[str, str], list[Pending]] = defaultdict(list)
        for item in batch.items:
            try:
                vb = vector_batch(item.event)
                validate_batch(vb, await self._dimensions(item.event))
            except DomainError as exc:
                await batch.dead_letter(item, PoisonMessage(exc.reason, exc.message))
                continue
            per_document[(item.tenant, vb.document_id)].append((item, vb))
        gate = asyncio.Semaphore(self.concurrency)
        results = await asyncio.gather(
            *(self._index_document(group, gate) for group in per_document.values())
        )
        indexed = [ev for group in results for ev in group]
        if indexed:
            await self.publisher.publish_many(self.sink, indexed)
        log.info("indexed %d ChunkVectors events", len(indexed))

    async def _index_document(
        self, group: list[Pending], gate: asyncio.Semaphore
    ) -> list[tuple[bytes, IndexedEvent]]:
        out = []
        async with gate:
            for item, vb in group:
                result = await self.indexer.apply_vectors(item.tenant, vb)
                if result.outcome is Outcome.INDEXED:
                    key = events.document_key(item.tenant, vb.document_id)
                    out.append((key, self._indexed_event(item, vb)))
                else:
                    log.info(
                        "dropped stale vectors of %s v%d (latest v%d, deleted up to v%d)",
                        vb.document_id, vb.version, result.state.latest_version,
                        result.state.deleted_up_to_version,
                    )
        return out

    async def on_deleted(self, batch: DeletedBatch) -> None:
        for item in batch.items:
            event = item.event
            if not event.document_id:
                await batch.dead_letter(
                    item, PoisonMessage("MISSING_DOCUMENT", "DocumentDeleted has no document_id")
                )
                continue
            state = await self.indexer.apply_delete(
                item.tenant, event.document_id, event.up_to_version
            )
            log.info(
                "deleted %s up to v%d", event.document_id, state.deleted_up_to_version,
                extra={"document_id": event.document_id},
            )

    def _indexed_event(self, item: VectorsItem, vb: VectorBatch) -> IndexedEvent:
        src = item.event.envelope
        return vectorstore_events.ChunksIndexed(
            envelope=events.make_envelope(
                PRODUCER, tenant=src.tenant_id, trace_id=src.trace_id,
                event_id=str(uuid.uuid5(_EVENT_ID_NAMESPACE, src.event_id)),
            ),
            document_id=vb.document_id,
            version=vb.version,
            chunk_ids=[c.chunk_id for c in vb.chunks],
            batch_index=vb.batch_index,
            batch_count=vb.batch_count,
            total_chunks=vb.total_chunks,
        )


def register(
    bus: EventBus,
    handlers: IndexingHandlers,
    group: str,
    deletes_group: str,
    max_records: int,
    vectors: EventType[embedding_events.ChunkVectors] = events.CHUNK_VECTORS,
    deletes: EventType[ingestion_events.DocumentDeleted] = events.DOCUMENT_DELETED,
) -> None:
    bus.subscribe_batch(vectors, group, handlers.on_vectors, max_records=max_records)
    bus.subscribe_batch(deletes, deletes_group, handlers.on_deleted, max_records=max_records)
