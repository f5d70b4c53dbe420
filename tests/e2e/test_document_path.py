"""Documents in over gRPC and Kafka, searchable chunks out, tenants kept apart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from e2e_support import Stack, Stubs, stats, tenant_name, wait_indexed
from llmops.ingestion.v1 import events_pb2, ingestion_pb2
from llmops.vectorstore.v1 import vectorstore_pb2
from llmops_cli.client import collect, document_for
from llmops_kit import events, ports, topics
from llmops_kit.kafka import HEADER_DLQ_REASON
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import error_reason

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
CORPUS = Path(__file__).resolve().parents[2] / "samples" / "corpus"
A, B, KAFKA_TENANT = tenant_name("a"), tenant_name("b"), tenant_name("kafka")


async def search(stubs: Stubs, md: tuple, query: str, mode: int = vectorstore_pb2.SEARCH_MODE_HYBRID,
                 k: int = 3, **filters: str) -> list[vectorstore_pb2.SearchHit]:
    req = vectorstore_pb2.SearchRequest(query=query, top_k=k, mode=mode)
    for key, value in filters.items():
        req.filters.add(key=key, equals=value)
    resp = await stubs.vector_store.Search(req, metadata=md, timeout=30)
    return list(resp.hits)


@pytest.fixture(scope="module")
async def corpus_a(e2e_stack: Stack) -> dict[str, int]:
    """The sample corpus ingested for tenant A over gRPC; returns chunk counts per document."""
    channel = grpc.aio.insecure_channel(ports.service_address("ingestion"))
    from llmops.ingestion.v1 import ingestion_pb2_grpc
    stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
    req = ingestion_pb2.SubmitDocumentsRequest(
        documents=[document_for(p, d) for p, d in collect([str(CORPUS)])])
    resp = await stub.SubmitDocuments(req, metadata=e2e_stack.md(A), timeout=60)
    await channel.close()
    return {r.document_id: r.chunk_count for r in resp.results}


async def test_corpus_becomes_searchable_with_the_right_documents(
    e2e_stack: Stack, stubs: Stubs, corpus_a: dict[str, int]
) -> None:
    md = e2e_stack.md(A)
    assert set(corpus_a) == {p.name for p in CORPUS.iterdir()}
    assert {"vacation-policy.md", "expense-policy.html", "security-handbook.md",
            "product-faq.txt", "onboarding-ko.md"} <= set(corpus_a)
    await wait_indexed(stubs, md, list(corpus_a))
    assert (await stats(stubs, md)).chunk_count == sum(corpus_a.values())

    hits = await search(stubs, md, "how many unused vacation days carry over to next year")
    assert hits[0].document_id == "vacation-policy.md"
    assert hits[0].text and hits[0].chunk_id and hits[0].score > 0
    hits = await search(stubs, md, "my laptop was stolen, who do I tell",
                        mode=vectorstore_pb2.SEARCH_MODE_VECTOR)
    assert hits[0].document_id == "security-handbook.md"
    hits = await search(stubs, md, "meal allowance", mode=vectorstore_pb2.SEARCH_MODE_KEYWORD)
    assert hits[0].document_id == "expense-policy.html"
    assert "analytics" not in hits[0].text  # <script> content was dropped
    hits = await search(stubs, md, "재택 근무는 주 몇 회 가능한가요?")
    assert hits[0].document_id == "onboarding-ko.md"
    hits = await search(stubs, md, "retention", k=5, extension="txt")
    assert hits and {h.document_id for h in hits} == {"product-faq.txt"}


async def test_other_tenant_sees_nothing(
    e2e_stack: Stack, stubs: Stubs, corpus_a: dict[str, int]
) -> None:
    await wait_indexed(stubs, e2e_stack.md(A), list(corpus_a))
    md_b = e2e_stack.md(B)
    for mode in (vectorstore_pb2.SEARCH_MODE_VECTOR, vectorstore_pb2.SEARCH_MODE_HYBRID,
                 vectorstore_pb2.SEARCH_MODE_KEYWORD):
        assert await search(stubs, md_b, "vacation days carry over", mode=mode) == []
    a_hits = await search(stubs, e2e_stack.md(A), "vacation", k=3)
    got = await stubs.vector_store.GetChunks(
        vectorstore_pb2.GetChunksRequest(chunk_ids=[h.chunk_id for h in a_hits]), metadata=md_b)
    assert list(got.chunks) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.ingestion.GetDocumentStatus(
            ingestion_pb2.GetDocumentStatusRequest(document_id="vacation-policy.md"),
            metadata=md_b)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await stats(stubs, md_b)).chunk_count == 0


async def test_pii_is_redacted_before_indexing(e2e_stack: Stack, stubs: Stubs) -> None:
    md = e2e_stack.md(KAFKA_TENANT)  # a tenant whose chunk counts no other test asserts
    doc = ingestion_pb2.Document(
        document_id="contacts", title="Contacts", content_type=ingestion_pb2.CONTENT_TYPE_TEXT,
        content=b"On-call escalation: write to oncall.lead@example.com or call 010-9876-5432. "
                b"The on-call rotation changes every Monday.")
    await stubs.ingestion.SubmitDocuments(
        ingestion_pb2.SubmitDocumentsRequest(documents=[doc]), metadata=md)
    await wait_indexed(stubs, md, ["contacts"])
    hits = await search(stubs, md, "on-call escalation rotation", k=3, document_id="contacts")
    assert hits and "[EMAIL]" in hits[0].text and "[PHONE]" in hits[0].text
    assert "oncall.lead@example.com" not in hits[0].text and "9876" not in hits[0].text


async def test_resubmit_replaces_and_delete_removes(e2e_stack: Stack, stubs: Stubs) -> None:
    md = e2e_stack.md(B)

    def doc(text: str) -> ingestion_pb2.Document:
        return ingestion_pb2.Document(document_id="changing", title="Changing",
                                      content_type=ingestion_pb2.CONTENT_TYPE_TEXT,
                                      content=text.encode())

    old = "The launch codename is ZEPHYRWIND and it ships in spring. " * 30
    new = "The launch codename is now AURORAPEAK and it ships in autumn. " * 45
    r1 = await stubs.ingestion.SubmitDocuments(
        ingestion_pb2.SubmitDocumentsRequest(documents=[doc(old)]), metadata=md)
    await wait_indexed(stubs, md, ["changing"])
    assert (await search(stubs, md, "ZEPHYRWIND", mode=vectorstore_pb2.SEARCH_MODE_KEYWORD))
    same = await stubs.ingestion.SubmitDocuments(
        ingestion_pb2.SubmitDocumentsRequest(documents=[doc(old)]), metadata=md)
    assert same.results[0].unchanged and same.results[0].version == r1.results[0].version
    r2 = await stubs.ingestion.SubmitDocuments(
        ingestion_pb2.SubmitDocumentsRequest(documents=[doc(new)]), metadata=md)
    assert r2.results[0].version == r1.results[0].version + 1
    await wait_indexed(stubs, md, ["changing"])
    for _ in range(40):  # old chunks are removed right after the new version is written
        if not await search(stubs, md, "ZEPHYRWIND", mode=vectorstore_pb2.SEARCH_MODE_KEYWORD):
            break
        await asyncio.sleep(0.25)
    assert await search(stubs, md, "ZEPHYRWIND", mode=vectorstore_pb2.SEARCH_MODE_KEYWORD) == []
    hits = await search(stubs, md, "AURORAPEAK", mode=vectorstore_pb2.SEARCH_MODE_KEYWORD, k=50)
    assert {h.document_version for h in hits} == {r2.results[0].version}
    assert (await stats(stubs, md)).chunk_count == r2.results[0].chunk_count

    deleted = await stubs.ingestion.DeleteDocument(
        ingestion_pb2.DeleteDocumentRequest(document_id="changing"), metadata=md)
    assert deleted.deleted_version == r2.results[0].version
    for _ in range(80):
        if (await stats(stubs, md)).chunk_count == 0:
            break
        await asyncio.sleep(0.25)
    assert (await stats(stubs, md)).chunk_count == 0
    st = await stubs.ingestion.GetDocumentStatus(
        ingestion_pb2.GetDocumentStatusRequest(document_id="changing"), metadata=md)
    assert st.state == ingestion_pb2.DOCUMENT_STATE_DELETED


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (ingestion_pb2.Document(document_id="e", content_type=1, content=b""), "EMPTY_DOCUMENT"),
        (ingestion_pb2.Document(document_id="e", content=b"no type"), "UNSUPPORTED_CONTENT_TYPE"),
        (ingestion_pb2.Document(document_id="", content_type=1, content=b"x"),
         "MISSING_DOCUMENT_ID"),
        (ingestion_pb2.Document(document_id="e", content_type=1, content=b"\xc3\x28"),
         "NOT_UTF8"),
        (ingestion_pb2.Document(document_id="e", content_type=1,
                                content=b"a" * (5 * 1024 * 1024 + 1)), "DOCUMENT_TOO_LARGE"),
    ],
)
async def test_bad_documents_get_invalid_argument_with_reason(
    e2e_stack: Stack, stubs: Stubs, document: ingestion_pb2.Document, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.ingestion.SubmitDocuments(
            ingestion_pb2.SubmitDocumentsRequest(documents=[document]),
            metadata=e2e_stack.md(B))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(reason)
    assert error_reason(err.value) == reason


@pytest.mark.parametrize(("md", "reason"), [((), "MISSING_API_KEY"),
                                            ((("x-api-key", "wrong"),), "INVALID_API_KEY")])
async def test_missing_or_wrong_key_is_unauthenticated(
    stubs: Stubs, md: tuple, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.vector_store.Search(vectorstore_pb2.SearchRequest(query="x"), metadata=md)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason in (err.value.details() or "")


async def test_bad_search_arguments(e2e_stack: Stack, stubs: Stubs) -> None:
    for req in (vectorstore_pb2.SearchRequest(query=""),
                vectorstore_pb2.SearchRequest(query="x", top_k=100_000),
                vectorstore_pb2.SearchRequest(query="x", mode=vectorstore_pb2.SEARCH_MODE_HYBRID,
                                              alpha=3.0)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.vector_store.Search(req, metadata=e2e_stack.md(A))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def _dlq_reasons(kafka: KafkaSettings, topic: str, keys: set[bytes]) -> dict[bytes, str]:
    consumer = AIOKafkaConsumer(topics.dead_letter(topic), **kafka.client_options(),
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: dict[bytes, str] = {}
    try:
        for _ in range(300):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    if r.key in keys:
                        found[r.key] = dict(r.headers)[HEADER_DLQ_REASON].decode()
            if set(found) == keys:
                break
    finally:
        await consumer.stop()
    return found


async def test_external_kafka_producer_and_poison_messages(
    e2e_stack: Stack, stubs: Stubs, kafka: KafkaSettings
) -> None:
    tenant = KAFKA_TENANT
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
    await producer.start()
    good_ids = [f"kdoc-{i}" for i in range(5)]
    try:
        for doc_id in good_ids:
            ev = events_pb2.DocumentSubmitted(
                envelope=events.make_envelope("crm-export", tenant=tenant),
                document=ingestion_pb2.Document(
                    document_id=doc_id, title=doc_id, source="crm",
                    content_type=ingestion_pb2.CONTENT_TYPE_MARKDOWN,
                    content=f"# Account {doc_id}\n\nRenewal date is in **March**. {doc_id}".encode(),
                    metadata={"origin": "crm"}))
            await producer.send_and_wait(topics.DOCUMENT_SUBMITTED, ev.SerializeToString(),
                                         key=events.document_key(tenant, doc_id))
        poison = {
            b"poison-garbage": b"\x0a\xff\xff garbage",
            b"poison-version": events_pb2.DocumentSubmitted(
                envelope=events.make_envelope("x", tenant=tenant, schema_version=2),
                document=ingestion_pb2.Document(document_id="v2", content_type=1, content=b"x"),
            ).SerializeToString(),
            b"poison-empty": events_pb2.DocumentSubmitted(
                envelope=events.make_envelope("x", tenant=tenant),
                document=ingestion_pb2.Document(document_id="empty", content_type=1, content=b""),
            ).SerializeToString(),
            b"poison-type": events_pb2.DocumentSubmitted(
                envelope=events.make_envelope("x", tenant=tenant),
                document=ingestion_pb2.Document(document_id="pdf", content=b"%PDF-1.4"),
            ).SerializeToString(),
        }
        for key, value in poison.items():
            await producer.send_and_wait(topics.DOCUMENT_SUBMITTED, value, key=key)
        # A good document after the poison ones proves the consumer kept going.
        tail = events_pb2.DocumentSubmitted(
            envelope=events.make_envelope("crm-export", tenant=tenant),
            document=ingestion_pb2.Document(document_id="after-poison", content_type=1,
                                            content=b"Processed after the poison messages."))
        await producer.send_and_wait(topics.DOCUMENT_SUBMITTED, tail.SerializeToString(),
                                     key=b"after")
    finally:
        await producer.stop()

    md = e2e_stack.md(tenant)
    await wait_indexed(stubs, md, [*good_ids, "after-poison"])
    hits = await search(stubs, md, "renewal date March", k=10, origin="crm")
    assert {h.document_id for h in hits} == set(good_ids)
    reasons = await _dlq_reasons(kafka, topics.DOCUMENT_SUBMITTED, set(poison))
    assert reasons == {
        b"poison-garbage": "MALFORMED_PROTOBUF",
        b"poison-version": "UNSUPPORTED_SCHEMA_VERSION",
        b"poison-empty": "EMPTY_DOCUMENT",
        b"poison-type": "UNSUPPORTED_CONTENT_TYPE",
    }
