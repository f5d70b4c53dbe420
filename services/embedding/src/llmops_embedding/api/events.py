"""ChunksCreated -> ChunkVectors. Decoding, offsets and retries are the kit's (EventBus)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Protocol, TypeAlias

from llmops.embedding.v1 import events_pb2 as embedding_events
from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops_embedding.domain.embedding import EmbeddingService, empty_chunk_indexes
from llmops_kit import events
from llmops_kit.errors import PoisonMessage
from llmops_kit.events import EventType
from llmops_kit.kafka import Batch, EventBus, Received

log = logging.getLogger(__name__)

PRODUCER = "embedding"
# ChunkVectors ids derive from the ChunksCreated id: a replayed batch re-publishes the same ids,
# so downstream consumers can tell a redelivery from new work.
_EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a4e-0c8e-4d8a-9a57-5f1f0e2b7d31")

ChunksBatch: TypeAlias = Batch[ingestion_events.ChunksCreated]
ChunksItem: TypeAlias = Received[ingestion_events.ChunksCreated]


class Publisher(Protocol):
    async def publish_many(
        self, event_type: EventType[embedding_events.ChunkVectors],
        events: Sequence[tuple[bytes, embedding_events.ChunkVectors]],
    ) -> None: ...


class EmbeddingHandlers:
    """The batch handlers of the embedding service's subscriptions (see register)."""

    def __init__(
        self,
        service: EmbeddingService,
        publisher: Publisher,
        sink: EventType[embedding_events.ChunkVectors] = events.CHUNK_VECTORS,
    ) -> None:
        self.service = service
        self.publisher = publisher
        self.sink = sink

    async def on_chunks_created(self, batch: ChunksBatch) -> None:
        accepted: list[ChunksItem] = []
        for item in batch.items:
            problem = self._problem(item.event)
            if problem is not None:
                await batch.dead_letter(item, problem)
            else:
                accepted.append(item)
        if not accepted:
            return
        groups = [[chunk.text for chunk in item.event.chunks] for item in accepted]
        vectors = await self.service.embed_many(groups)
        out = [
            (events.document_key(item.tenant, item.event.document.document_id),
             self._vectors_event(item.event, vecs))
            for item, vecs in zip(accepted, vectors, strict=True)
        ]
        await self.publisher.publish_many(self.sink, out)
        log.info(
            "embedded %d chunks from %d events", sum(len(g) for g in groups), len(accepted),
            extra={"events": len(accepted)},
        )

    @staticmethod
    def _problem(event: ingestion_events.ChunksCreated) -> PoisonMessage | None:
        if not event.document.document_id:
            return PoisonMessage("MISSING_DOCUMENT", "ChunksCreated has no document.document_id")
        if not event.chunks:
            return PoisonMessage(
                "EMPTY_CHUNKS", f"ChunksCreated for {event.document.document_id} has no chunks"
            )
        empty = empty_chunk_indexes([chunk.text for chunk in event.chunks])
        if empty:
            return PoisonMessage(
                "EMPTY_CHUNKS",
                f"ChunksCreated for {event.document.document_id}: chunks {empty[:10]} have no text",
            )
        return None

    def _vectors_event(
        self, src: ingestion_events.ChunksCreated, vectors: list[list[float]]
    ) -> embedding_events.ChunkVectors:
        info = self.service.model_info()
        envelope = events.make_envelope(
            PRODUCER,
            tenant=src.envelope.tenant_id,
            trace_id=src.envelope.trace_id,
            event_id=str(uuid.uuid5(_EVENT_ID_NAMESPACE, src.envelope.event_id)),
        )
        return embedding_events.ChunkVectors(
            envelope=envelope,
            document=src.document,
            chunks=[
                embedding_events.EmbeddedChunk(chunk=chunk, vector=vector)
                for chunk, vector in zip(src.chunks, vectors, strict=True)
            ],
            model=info.model,
            dimensions=info.dimensions,
            batch_index=src.batch_index,
            batch_count=src.batch_count,
        )


def register(
    bus: EventBus,
    handlers: EmbeddingHandlers,
    group: str,
    max_records: int,
    source: EventType[ingestion_events.ChunksCreated] = events.CHUNKS_CREATED,
) -> None:
    bus.subscribe_batch(source, group, handlers.on_chunks_created, max_records=max_records)
