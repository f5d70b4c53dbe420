"""TenantDeleted through a real Kafka broker removes the tenant's rows from ingestion's SQLite
store, leaves other tenants' rows alone, and dead-letters an event without a tenant."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_ingestion.adapters.sql_store import SqlDocumentStore, make_engine
from llmops_ingestion.api import tenants
from llmops_ingestion.domain.model import Chunk, DocumentState, PreparedDocument
from llmops_kit import topics
from llmops_kit.kafka import HEADER_DLQ_REASON, EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import eventually, read_topic, send_tenant_deleted, tenant_deleted_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def prepared(tenant: str, doc: str) -> PreparedDocument:
    return PreparedDocument(tenant=tenant, document_id=doc, title=doc, source="", metadata={},
                            fingerprint=f"fp-{doc}", chunks=[Chunk("c0", 0, "text", "h0", 1, 0, 4)],
                            duplicates_dropped=0)


async def fill(store: SqlDocumentStore, tenant: str) -> None:
    for doc in ("a.md", "b.md"):
        record, _ = await store.begin_version(prepared(tenant, doc))
        await store.mark_published(tenant, doc, record.version)
        await store.record_indexed(tenant, doc, record.version, 0, 1)


async def test_tenant_deleted_removes_only_that_tenants_rows(
        tmp_path: Path, kafka: KafkaSettings, unique: str) -> None:
    store = SqlDocumentStore(make_engine(f"sqlite:///{tmp_path}/ingestion.db"))
    gone, kept = f"gone-{unique}", f"kept-{unique}"
    await fill(store, gone)
    await fill(store, kept)
    assert (await store.get(gone, "a.md")).state is DocumentState.INDEXED  # type: ignore[union-attr]

    topic = tenant_deleted_topic()
    await ensure_topics(kafka, [topic.topic, topics.dead_letter(topic.topic)], partitions=1)
    bus = EventBus(kafka, client_id=f"test-ingestion-{unique}")
    tenants.register(bus, store, group=f"ingestion-tenants-{unique}", event_type=topic)
    await bus.start()
    try:
        await send_tenant_deleted(kafka, topic.topic, "", gone)

        async def gone_from_store() -> bool:
            return await store.get(gone, "a.md") is None and await store.get(gone, "b.md") is None
        await eventually(gone_from_store)
    finally:
        await bus.stop()

    for doc in ("a.md", "b.md"):
        record = await store.get(kept, doc)
        assert record is not None and record.state is DocumentState.INDEXED
        assert record.indexed_chunk_count == 1
    assert await store.delete_tenant(gone) == 0  # idempotent: a redelivery finds nothing
    dlq = await read_topic(kafka, topics.dead_letter(topic.topic), 1)
    assert [dict(r.headers)[HEADER_DLQ_REASON] for r in dlq] == [b"MISSING_TENANT_ID"]
