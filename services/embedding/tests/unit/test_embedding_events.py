"""ChunksCreated -> ChunkVectors at the event edge (fake model, fake bus)."""

from __future__ import annotations

import pytest

from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops_embedding.api.events import EmbeddingHandlers
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_kit import events

pytestmark = pytest.mark.unit


def chunks_created(
    tenant: str, doc: str, texts: list[str], batch_index: int = 0, batch_count: int = 1
) -> ingestion_events.ChunksCreated:
    return ingestion_events.ChunksCreated(
        envelope=events.make_envelope("ingestion", tenant=tenant, trace_id=f"trace-{doc}"),
        document=ingestion_events.DocumentRef(
            document_id=doc, version=2, title="T", source="src", metadata={"k": "v"},
            total_chunks=len(texts),
        ),
        chunks=[
            ingestion_events.Chunk(chunk_id=f"{doc}-{i}", index=i, text=t)
            for i, t in enumerate(texts)
        ],
        batch_index=batch_index,
        batch_count=batch_count,
    )


@pytest.fixture
def handler(embedder, bus) -> EmbeddingHandlers:
    return EmbeddingHandlers(EmbeddingService(embedder), bus)


async def test_one_model_call_per_kafka_batch(handler, embedder, bus, batch_of):
    first = chunks_created("acme", "d1", ["a", "bb"], batch_index=1, batch_count=3)
    second = chunks_created("globex", "d2", ["ccc"])
    await handler.on_chunks_created(batch_of([first, second]))
    assert embedder.calls == [["a", "bb", "ccc"]]
    assert len(bus.published) == 2
    event_type, key, out = bus.published[0]
    assert event_type is events.CHUNK_VECTORS
    assert key == events.document_key("acme", "d1")
    assert out.envelope.tenant_id == "acme" and out.envelope.trace_id == "trace-d1"
    assert out.envelope.producer == "embedding"
    assert out.envelope.event_id != first.envelope.event_id
    assert out.document == first.document
    assert (out.batch_index, out.batch_count) == (1, 3)
    assert (out.model, out.dimensions) == ("fake-model", 3)
    assert [c.chunk.chunk_id for c in out.chunks] == ["d1-0", "d1-1"]
    assert [c.vector[0] for c in out.chunks] == [1.0, 2.0]
    assert bus.published[1][2].envelope.tenant_id == "globex"


async def test_replay_gives_same_event_ids(handler, bus, batch_of):
    ev = chunks_created("acme", "d1", ["a"])
    await handler.on_chunks_created(batch_of([ev]))
    await handler.on_chunks_created(batch_of([ev]))
    assert bus.published[0][2].envelope.event_id == bus.published[1][2].envelope.event_id


async def test_empty_chunks_are_dead_lettered(handler, embedder, bus, batch_of):
    no_chunks = chunks_created("acme", "empty", [])
    blank = chunks_created("acme", "blank", ["fine", "   "])
    good = chunks_created("acme", "good", ["text"])
    await handler.on_chunks_created(batch_of([no_chunks, blank, good]))
    assert [reason for _, reason in bus.dead] == ["EMPTY_CHUNKS", "EMPTY_CHUNKS"]
    assert embedder.calls == [["text"]]
    assert [e.document.document_id for _, _, e in bus.published] == ["good"]


async def test_all_bad_means_no_model_call(handler, embedder, bus, batch_of):
    await handler.on_chunks_created(batch_of([chunks_created("acme", "empty", [])]))
    assert embedder.calls == [] and bus.published == []
