"""ChunksCreated -> ChunkVectors through a real Kafka broker (infra/scripts/kafka.sh start).

Topics are unique per test run so other sessions' traffic never reaches this consumer.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer

from llmops.embedding.v1 import events_pb2 as embedding_events
from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops_embedding.api.events import EmbeddingHandlers, register
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_kit import events
from llmops_kit.kafka import HEADER_DLQ_REASON, EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]



def chunks_created(tenant: str, doc: str, texts: list[str]) -> ingestion_events.ChunksCreated:
    return ingestion_events.ChunksCreated(
        envelope=events.make_envelope("test", tenant=tenant),
        document=ingestion_events.DocumentRef(document_id=doc, version=1,
                                              total_chunks=len(texts)),
        chunks=[ingestion_events.Chunk(chunk_id=str(uuid.uuid4()), index=i, text=t)
                for i, t in enumerate(texts)],
        batch_count=1,
    )


async def test_chunks_become_vectors_and_empty_ones_are_dead_lettered(
    st_embedder, kafka: KafkaSettings
) -> None:
    run = uuid.uuid4().hex[:10]
    source = events.EventType(f"llmops.test-{run}.chunks-created.v1",
                              ingestion_events.ChunksCreated)
    sink = events.EventType(f"llmops.test-{run}.chunk-vectors.v1", embedding_events.ChunkVectors)
    await ensure_topics(kafka, [source.topic, sink.topic], partitions=1)

    bus = EventBus(kafka, client_id=f"test-embedding-{run}")
    register(bus, EmbeddingHandlers(EmbeddingService(st_embedder), bus, sink=sink),
             group=f"embedding-{run}", max_records=128, source=source)
    inputs = [
        chunks_created("acme", "d1", ["first chunk", "second chunk"]),
        chunks_created("acme", "empty", []),
        chunks_created("globex", "d2", ["안녕하세요, 세계"]),
    ]
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        for ev in inputs:
            await producer.send_and_wait(
                source.topic, ev.SerializeToString(),
                key=events.document_key(ev.envelope.tenant_id, ev.document.document_id),
            )
    finally:
        await producer.stop()

    await bus.start()
    try:
        out = await read_topic(kafka, sink.topic, 2)
        dlq = await read_topic(kafka, source.topic + ".dlq", 1)
    finally:
        await bus.stop()

    vectors = [embedding_events.ChunkVectors.FromString(r.value) for r in out]
    by_doc = {v.document.document_id: v for v in vectors}
    assert set(by_doc) == {"d1", "d2"}
    assert [len(c.vector) for c in by_doc["d1"].chunks] == [384, 384]
    assert by_doc["d2"].envelope.tenant_id == "globex" and by_doc["d2"].dimensions == 384
    assert {r.key for r in out} == {b"acme/d1", b"globex/d2"}
    assert [dict(r.headers)[HEADER_DLQ_REASON] for r in dlq] == [b"EMPTY_CHUNKS"]
