"""The event edge: protobuf -> domain, dead-letters, ChunksIndexed publishing."""

from __future__ import annotations

import pytest

from llmops.embedding.v1 import events_pb2 as embedding_events
from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops_kit import events
from llmops_vectorstore.api.events import IndexingHandlers
from llmops_vectorstore.domain.indexing import Indexer

pytestmark = pytest.mark.unit

DIMS = 4


def vectors_event(
    tenant: str, doc: str, version: int, n: int = 2, vector: list[float] | None = None,
    event_id: str | None = None,
) -> embedding_events.ChunkVectors:
    return embedding_events.ChunkVectors(
        envelope=events.make_envelope("test", tenant=tenant, trace_id="trace-1",
                                      event_id=event_id),
        document=ingestion_events.DocumentRef(
            document_id=doc, version=version, title="T", source="s://x",
            metadata={"lang": "en"}, total_chunks=n,
        ),
        chunks=[
            embedding_events.EmbeddedChunk(
                chunk=ingestion_events.Chunk(chunk_id=f"{doc}-{version}-{i}", index=i,
                                             text=f"text {i}"),
                vector=vector if vector is not None else [1.0, 0.0, 0.0, float(i)],
            )
            for i in range(n)
        ],
        model="m", dimensions=DIMS, batch_index=0, batch_count=1,
    )


@pytest.fixture
def handlers(store, bus) -> IndexingHandlers:
    return IndexingHandlers(Indexer(store), bus, DIMS)


async def test_indexes_and_announces(handlers, batch_of, store, bus):
    ev = vectors_event("acme", "d1", 1, n=3)
    await handlers.on_vectors(batch_of([ev, vectors_event("globex", "d2", 1)]))
    assert len(store.chunks["acme"]) == 3 and len(store.chunks["globex"]) == 2
    stored = store.chunks["acme"]["d1-1-0"]
    assert (stored.title, stored.source, dict(stored.metadata)) == ("T", "s://x", {"lang": "en"})
    assert len(bus.published) == 2
    event_type, key, indexed = bus.published[0]
    assert event_type is events.CHUNKS_INDEXED
    assert key == events.document_key("acme", "d1")
    assert list(indexed.chunk_ids) == ["d1-1-0", "d1-1-1", "d1-1-2"]
    assert indexed.envelope.tenant_id == "acme" and indexed.envelope.trace_id == "trace-1"
    assert indexed.envelope.producer == "vector-store"
    assert (indexed.version, indexed.total_chunks, indexed.batch_count) == (1, 3, 1)


async def test_replay_announces_same_event_id(handlers, batch_of, bus):
    ev = vectors_event("acme", "d1", 1)
    await handlers.on_vectors(batch_of([ev]))
    await handlers.on_vectors(batch_of([ev]))
    ids = {e.envelope.event_id for _, _, e in bus.published}
    assert len(bus.published) == 2 and len(ids) == 1


@pytest.mark.parametrize("vector", [[], [1.0, 2.0], [float("inf")] * DIMS])
async def test_bad_vectors_are_dead_lettered(handlers, batch_of, store, bus, vector):
    good = vectors_event("acme", "ok", 1)
    bad = vectors_event("acme", "bad", 1, vector=vector)
    await handlers.on_vectors(batch_of([bad, good]))
    assert [reason for _, reason in bus.dead] == ["BAD_VECTOR"]
    assert {c.document_id for c in store.chunks["acme"].values()} == {"ok"}
    assert len(bus.published) == 1


async def test_stale_vectors_are_not_announced(handlers, batch_of, store, bus):
    await handlers.on_vectors(batch_of([vectors_event("acme", "d", 2)]))
    await handlers.on_vectors(batch_of([vectors_event("acme", "d", 1)]))
    assert [e.version for _, _, e in bus.published] == [2]
    assert store.versions("acme", "d") == {2}


async def test_versions_in_one_batch_apply_in_order(handlers, batch_of, store, bus):
    batch = batch_of([vectors_event("acme", "d", 1), vectors_event("acme", "d", 2)])
    await handlers.on_vectors(batch)
    assert store.versions("acme", "d") == {2}
    assert [e.version for _, _, e in bus.published] == [1, 2]


async def test_document_deleted(handlers, batch_of, store, bus):
    await handlers.on_vectors(batch_of([vectors_event("acme", "d", 1)]))
    deleted = ingestion_events.DocumentDeleted(
        envelope=events.make_envelope("test", tenant="acme"), document_id="d", up_to_version=0
    )
    missing = ingestion_events.DocumentDeleted(envelope=events.make_envelope("t", tenant="acme"))
    await handlers.on_deleted(batch_of([deleted, missing]))
    assert store.versions("acme", "d") == set()
    assert [reason for _, reason in bus.dead] == ["MISSING_DOCUMENT"]
    assert store.documents["acme"]["d"].deleted_up_to_version == 1
