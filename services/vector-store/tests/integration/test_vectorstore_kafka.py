"""ChunkVectors / DocumentDeleted -> Weaviate -> ChunksIndexed through a real Kafka broker.

Topics are unique per test run so other sessions' traffic never reaches this consumer.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from llmops.embedding.v1 import events_pb2 as embedding_events
from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops.vectorstore.v1 import events_pb2 as vectorstore_events
from llmops_kit import events
from llmops_kit.kafka import HEADER_DLQ_REASON, EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import read_topic
from llmops_vectorstore.api.events import IndexingHandlers, register
from llmops_vectorstore.domain.indexing import Indexer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DIMS = 8



def vectors(tenant: str, doc: str, version: int, n: int, dims: int = DIMS) -> Any:
    return embedding_events.ChunkVectors(
        envelope=events.make_envelope("test", tenant=tenant),
        document=ingestion_events.DocumentRef(document_id=doc, version=version, total_chunks=n),
        chunks=[
            embedding_events.EmbeddedChunk(
                chunk=ingestion_events.Chunk(
                    chunk_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{doc}/{version}/{i}")),
                    index=i, text=f"{doc} chunk {i}"),
                vector=[1.0] + [float(i)] * (dims - 1),
            )
            for i in range(n)
        ],
        model="m", dimensions=dims, batch_count=1,
    )


async def wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def test_index_announce_delete(weaviate_store, tenant, kafka: KafkaSettings) -> None:
    run = uuid.uuid4().hex[:10]
    src = events.EventType(f"llmops.test-{run}.chunk-vectors.v1", embedding_events.ChunkVectors)
    dels = events.EventType(f"llmops.test-{run}.document-deleted.v1",
                            ingestion_events.DocumentDeleted)
    sink = events.EventType(f"llmops.test-{run}.chunks-indexed.v1",
                            vectorstore_events.ChunksIndexed)
    await ensure_topics(kafka, [src.topic, dels.topic, sink.topic], partitions=1)

    bus = EventBus(kafka, client_id=f"test-vs-{run}")
    handlers = IndexingHandlers(Indexer(weaviate_store), bus, DIMS, sink=sink)
    register(bus, handlers, f"vs-{run}", f"vs-{run}-deletes", 64, vectors=src, deletes=dels)

    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()

    async def send(topic: str, ev: Any, doc: str) -> None:
        await producer.send_and_wait(topic, ev.SerializeToString(),
                                     key=events.document_key(tenant, doc))

    try:
        first = vectors(tenant, "d1", 1, 3)
        await send(src.topic, first, "d1")
        await send(src.topic, first, "d1")  # the same event again (a producer retry)
        await send(src.topic, vectors(tenant, "bad", 1, 2, dims=3), "bad")
        await send(src.topic, vectors(tenant, "d2", 1, 2), "d2")
        await bus.start()
        indexed = await read_topic(kafka, sink.topic, 3)
        dlq = await read_topic(kafka, src.topic + ".dlq", 1)
        stats = await weaviate_store.stats(tenant)
        assert (stats.chunk_count, stats.document_count) == (5, 2)

        await send(dels.topic, ingestion_events.DocumentDeleted(
            envelope=events.make_envelope("test", tenant=tenant), document_id="d1"), "d1")

        async def d1_gone() -> bool:
            return (await weaviate_store.stats(tenant)).chunk_count == 2

        await wait_for(d1_gone)
    finally:
        await producer.stop()
        await bus.stop()

    announced = [vectorstore_events.ChunksIndexed.FromString(r.value) for r in indexed]
    assert sorted((a.document_id, len(a.chunk_ids)) for a in announced) == [
        ("d1", 3), ("d1", 3), ("d2", 2)
    ]
    # The repeated event was announced again, under the same (derived) event id.
    assert len({a.envelope.event_id for a in announced}) == 2
    assert [dict(r.headers)[HEADER_DLQ_REASON] for r in dlq] == [b"BAD_VECTOR"]
    assert (await weaviate_store.stats(tenant)).document_count == 1
