"""ChunkPublisher on the platform's event bus."""

from __future__ import annotations

from llmops.ingestion.v1 import events_pb2
from llmops_ingestion.domain.model import PreparedDocument
from llmops_kit import events
from llmops_kit.kafka import EventBus

PRODUCER = "ingestion"


class BusChunkPublisher:
    def __init__(
        self, bus: EventBus, chunks_per_event: int,
        chunks_created: events.EventType[events_pb2.ChunksCreated] = events.CHUNKS_CREATED,
    ) -> None:
        self.bus = bus
        self.chunks_per_event = chunks_per_event
        self.chunks_created = chunks_created

    async def publish_chunks(self, doc: PreparedDocument, version: int) -> None:
        ref = events_pb2.DocumentRef(
            document_id=doc.document_id,
            version=version,
            title=doc.title,
            source=doc.source,
            metadata=doc.metadata,
            total_chunks=len(doc.chunks),
        )
        size = self.chunks_per_event
        batches = [doc.chunks[i:i + size] for i in range(0, len(doc.chunks), size)] or [[]]
        key = events.document_key(doc.tenant, doc.document_id)
        out = []
        for i, batch in enumerate(batches):
            # Event ids derive from the chunk ids, so a re-publish after a crash carries the
            # same ids and downstream de-duplication sees one event, not two.
            event_id = batch[0].chunk_id if batch else f"{doc.document_id}/{version}/empty"
            out.append((key, events_pb2.ChunksCreated(
                envelope=events.make_envelope(PRODUCER, tenant=doc.tenant, event_id=event_id),
                document=ref,
                chunks=[events_pb2.Chunk(
                    chunk_id=c.chunk_id,
                    index=c.index,
                    text=c.text,
                    content_hash=c.content_hash,
                    token_count=c.token_count,
                    char_start=c.char_start,
                    char_end=c.char_end,
                ) for c in batch],
                batch_index=i,
                batch_count=len(batches),
            )))
        await self.bus.publish_many(self.chunks_created, out)

    async def publish_deleted(self, tenant: str, document_id: str, up_to_version: int) -> None:
        await self.bus.publish(
            events.DOCUMENT_DELETED,
            events_pb2.DocumentDeleted(
                envelope=events.make_envelope(PRODUCER, tenant=tenant),
                document_id=document_id,
                up_to_version=up_to_version,
            ),
            events.document_key(tenant, document_id),
        )
