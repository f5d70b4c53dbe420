"""PII never leaves ingestion, on both entry paths: gRPC SubmitDocuments and DocumentSubmitted
on Kafka, over a real socket, a real broker and a real SQLite store.

Topics and the consumer group are unique per run so other sessions' traffic never mixes in.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaProducer

from llmops.ingestion.v1 import events_pb2, ingestion_pb2, ingestion_pb2_grpc
from llmops_ingestion.adapters.bus_publisher import BusChunkPublisher
from llmops_ingestion.adapters.pii import PiiRedactor
from llmops_ingestion.adapters.sql_store import SqlDocumentStore, make_engine
from llmops_ingestion.adapters.tokenizers import WordTokenizer
from llmops_ingestion.api import events as event_api
from llmops_ingestion.api.grpc import ROLES, IngestionServicer
from llmops_ingestion.domain.chunking import ChunkingPolicy
from llmops_ingestion.domain.service import IngestionService, Limits
from llmops_ingestion.settings import Settings
from llmops_kit import events
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import HEADER_DLQ_ERROR, HEADER_DLQ_REASON, EventBus, ensure_topics
from llmops_kit.key_resolver import build_resolver
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import error_reason, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ACME = (("x-api-key", "dev-key-acme"),)
RAW_PII = (b"jane.doe@example.com", b"010-1234-5678", b"4111 1111 1111 1111",
           b"DE89 3704 0044 0532 0130 00", b"900101-1234567")


@dataclass
class Running:
    stub: ingestion_pb2_grpc.IngestionServiceStub
    submitted: events.EventType[events_pb2.DocumentSubmitted]
    chunks: events.EventType[events_pb2.ChunksCreated]


@pytest.fixture
async def ingestion(kafka: KafkaSettings, tmp_path: Path) -> AsyncIterator[Running]:
    run = uuid.uuid4().hex[:10]
    submitted = events.EventType(f"llmops.test-{run}.document-submitted.v1",
                                 events_pb2.DocumentSubmitted)
    chunks = events.EventType(f"llmops.test-{run}.chunks-created.v1", events_pb2.ChunksCreated)
    await ensure_topics(kafka, [submitted.topic, chunks.topic], partitions=1)
    bus = EventBus(kafka, client_id=f"test-ingestion-{run}")
    service = IngestionService(
        SqlDocumentStore(make_engine(f"sqlite:///{tmp_path}/ingestion.db")),
        BusChunkPublisher(bus, 64, chunks_created=chunks), WordTokenizer(),
        ChunkingPolicy(50, 10), Limits(), redactor=PiiRedactor())
    event_api.register(bus, event_api.IngestionHandlers(service), 16, submitted=submitted,
                       group=f"ingestion-{run}")
    server = GrpcServer("127.0.0.1", 0, build_resolver(Settings()))
    server.add(ingestion_pb2_grpc.add_IngestionServiceServicer_to_server,
               IngestionServicer(service), ["llmops.ingestion.v1.IngestionService"], ROLES)
    await bus.start()
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Running(ingestion_pb2_grpc.IngestionServiceStub(channel), submitted, chunks)
    finally:
        await server.stop(0)
        await bus.stop()


def document(doc_id: str) -> ingestion_pb2.Document:
    return ingestion_pb2.Document(
        document_id=doc_id,
        title="Escalations: call 010-1234-5678",
        source="https://wiki.example.com/u/jane.doe@example.com/escalations",
        content_type=ingestion_pb2.CONTENT_TYPE_TEXT,
        content=b"Card 4111 1111 1111 1111 is on file; ask the on-call lead.",
        metadata={"owner": "jane.doe@example.com", "iban": "DE89 3704 0044 0532 0130 00",
                  "rrn": "900101-1234567", "team": "hr"},
    )


def assert_redacted(event: events_pb2.ChunksCreated, raw: bytes) -> None:
    ref = event.document
    assert ref.title == "Escalations: call [PHONE]"
    assert ref.source == "https://wiki.example.com/u/[EMAIL]/escalations"
    assert dict(ref.metadata) == {"owner": "[EMAIL]", "iban": "[IBAN]", "rrn": "[KR_RRN]",
                                  "team": "hr"}
    assert [c.text for c in event.chunks] == [
        "Card [CREDIT_CARD] is on file; ask the on-call lead."]
    for pii in RAW_PII:
        assert pii not in raw


async def test_grpc_path_redacts_every_field_and_refuses_pii_ids(
    ingestion: Running, kafka: KafkaSettings
) -> None:
    response = await ingestion.stub.SubmitDocuments(
        ingestion_pb2.SubmitDocumentsRequest(documents=[document("hr/escalations.md")]),
        metadata=ACME)
    assert response.results[0].chunk_count == 1
    (record,) = await read_topic(kafka, ingestion.chunks.topic, 1)
    assert_redacted(events_pb2.ChunksCreated.FromString(record.value), record.value)
    status = await ingestion.stub.GetDocumentStatus(
        ingestion_pb2.GetDocumentStatusRequest(document_id="hr/escalations.md"), metadata=ACME)
    assert (status.title, status.source) == (
        "Escalations: call [PHONE]", "https://wiki.example.com/u/[EMAIL]/escalations")

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await ingestion.stub.SubmitDocuments(ingestion_pb2.SubmitDocumentsRequest(
            documents=[document("people/jane.doe@example.com.md")]), metadata=ACME)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(info.value) == "DOCUMENT_ID_CONTAINS_PII"
    assert "jane.doe@example.com" not in (info.value.details() or "")
    # Nothing of the refused document was published.
    assert len(await read_topic(kafka, ingestion.chunks.topic, 2, timeout=3)) == 1


async def test_kafka_path_redacts_every_field_and_dead_letters_pii_ids(
    ingestion: Running, kafka: KafkaSettings
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for doc_id in ("kyc/900101-1234567", "hr/escalations.md"):
            ev = events_pb2.DocumentSubmitted(
                envelope=events.make_envelope("test", tenant="acme"), document=document(doc_id))
            await producer.send_and_wait(ingestion.submitted.topic, ev.SerializeToString(),
                                         key=b"acme")
    finally:
        await producer.stop()
    (record,) = await read_topic(kafka, ingestion.chunks.topic, 1)
    event = events_pb2.ChunksCreated.FromString(record.value)
    assert (event.envelope.tenant_id, event.document.document_id) == ("acme", "hr/escalations.md")
    assert_redacted(event, record.value)
    (dead,) = await read_topic(kafka, ingestion.submitted.topic + ".dlq", 1)
    headers = dict(dead.headers)
    assert headers[HEADER_DLQ_REASON] == b"DOCUMENT_ID_CONTAINS_PII"
    assert b"900101-1234567" not in headers[HEADER_DLQ_ERROR]
