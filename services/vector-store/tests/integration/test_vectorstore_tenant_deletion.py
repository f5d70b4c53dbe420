"""TenantDeleted through a real Kafka broker removes the tenant from the real Weaviate
(chunks and document states), and leaves other tenants' data alone."""

from __future__ import annotations

import uuid

import pytest

from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import eventually, send_tenant_deleted, tenant_deleted_topic
from llmops_vectorstore.adapters.weaviate import WeaviateStore
from llmops_vectorstore.adapters.weaviate_schema import tenant_name
from llmops_vectorstore.api import tenants
from llmops_vectorstore.domain.model import ChunkRecord

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def fill(store: WeaviateStore, tenant: str) -> None:
    for doc in ("a.md", "b.md"):
        await store.put_latest_version(tenant, doc, 1)
        await store.upsert_chunks(tenant, [
            ChunkRecord(chunk_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{doc}/{i}")),
                        document_id=doc, document_version=1, chunk_index=i, text=f"{doc} {i}",
                        vector=[1.0, float(i), 0.5, 0.25])
            for i in range(3)
        ])


async def test_tenant_deleted_removes_the_weaviate_tenant(
        weaviate_store: WeaviateStore, kafka: KafkaSettings, unique: str) -> None:
    gone, kept = f"gone-{unique}", f"kept-{unique}"
    await fill(weaviate_store, gone)
    await fill(weaviate_store, kept)
    before = await weaviate_store.stats(gone)
    assert (before.chunk_count, before.document_count) == (6, 2)

    topic = tenant_deleted_topic()
    await ensure_topics(kafka, [topic.topic], partitions=1)
    bus = EventBus(kafka, client_id=f"test-vs-tenants-{unique}")
    tenants.register(bus, weaviate_store, group=f"vs-tenants-{unique}", event_type=topic)
    await bus.start()
    try:
        await send_tenant_deleted(kafka, topic.topic, gone)

        async def tenant_removed() -> bool:
            return not await weaviate_store.client.collections.use(
                weaviate_store.chunks_name).tenants.exists(tenant_name(gone))
        await eventually(tenant_removed)
    finally:
        await bus.stop()

    for name in (weaviate_store.chunks_name, weaviate_store.documents_name):
        collection = weaviate_store.client.collections.use(name)
        assert not await collection.tenants.exists(tenant_name(gone))
        assert await collection.tenants.exists(tenant_name(kept))
    after = await weaviate_store.stats(gone)
    assert (after.chunk_count, after.document_count) == (0, 0)
    untouched = await weaviate_store.stats(kept)
    assert (untouched.chunk_count, untouched.document_count) == (6, 2)
    assert await weaviate_store.delete_tenant(gone) == 0  # idempotent: a redelivery is a no-op
