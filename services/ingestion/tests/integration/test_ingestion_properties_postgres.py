"""The ingestion property tests that touch the store, on Postgres: arbitrary requests and
events give a result, INVALID_ARGUMENT or a dead-letter reason, never a database error (which
would be an internal error for a caller, and a consumer retrying one event forever)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.ingestion.v1 import events_pb2
from llmops.ingestion.v1 import ingestion_pb2 as pb
from llmops.vectorstore.v1 import events_pb2 as vs_events
from llmops_ingestion.adapters.sql_store import SqlDocumentStore, make_engine
from llmops_ingestion.adapters.tokenizers import WordTokenizer
from llmops_ingestion.api import events as event_api
from llmops_ingestion.api.grpc import IngestionServicer
from llmops_ingestion.domain.chunking import ChunkingPolicy
from llmops_ingestion.domain.model import PreparedDocument
from llmops_ingestion.domain.service import IngestionService, Limits
from llmops_kit import events
from llmops_kit.errors import PoisonMessage
from llmops_kit.kafka import Batch, Received
from llmops_kit.proto_strategies import assert_client_error, messages, rpc_outcome

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PROPERTY = settings(max_examples=200, deadline=5000,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


class NullPublisher:
    async def publish_chunks(self, doc: PreparedDocument, version: int) -> None:
        return None

    async def publish_deleted(self, tenant: str, document_id: str, up_to_version: int) -> None:
        return None


class Consumers:
    """Stands in for the EventBus: keeps the handlers api/events.py registers, and the DLQ."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.dead: list[str] = []

    def subscribe_batch(self, event_type: Any, group: str, handler: Any, **_: Any) -> None:
        self.handlers[event_type.topic] = handler

    async def dead_letter(self, record: Any, error: PoisonMessage, group: str) -> None:
        self.dead.append(error.reason)

    async def deliver(self, event_type: Any, event: Any) -> None:
        record = SimpleNamespace(topic=event_type.topic, partition=0, offset=len(self.dead),
                                 key=None, value=b"", headers=())
        batch = Batch([Received(event, record)], self, "test")  # type: ignore[arg-type]
        await self.handlers[event_type.topic](batch)


@pytest.fixture(scope="module")
def store(postgres_url: str) -> Iterator[SqlDocumentStore]:
    engine = make_engine(postgres_url)
    yield SqlDocumentStore(engine)
    engine.dispose()


@pytest.fixture
def service(store: SqlDocumentStore) -> IngestionService:
    return IngestionService(store, NullPublisher(), WordTokenizer(), ChunkingPolicy(50, 10),
                            Limits(max_document_bytes=10_000, max_batch_documents=3))


@pytest.fixture
def consumers(service: IngestionService) -> Consumers:
    bus = Consumers()
    event_api.register(bus, event_api.IngestionHandlers(service), 64)  # type: ignore[arg-type]
    return bus


@PROPERTY
@given(request=messages(pb.SubmitDocumentsRequest))
def test_submit_documents(service: IngestionService, request: pb.SubmitDocumentsRequest) -> None:
    assert_client_error(rpc_outcome(IngestionServicer(service).SubmitDocuments(request, None)))


@PROPERTY
@given(request=messages(pb.GetDocumentStatusRequest))
def test_get_document_status(service: IngestionService,
                             request: pb.GetDocumentStatusRequest) -> None:
    result = rpc_outcome(IngestionServicer(service).GetDocumentStatus(request, None))
    assert_client_error(result, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


@pytest.mark.parametrize(("event_type", "message"), [
    (events.DOCUMENT_SUBMITTED, events_pb2.DocumentSubmitted),
    (events.DOCUMENT_DELETED, events_pb2.DocumentDeleted),
    (events.CHUNKS_INDEXED, vs_events.ChunksIndexed),
], ids=["submitted", "deleted", "indexed"])
@PROPERTY
@given(data=st.data())
def test_events_are_handled_or_dead_lettered(consumers: Consumers, event_type: Any,
                                             message: Any, data: Any) -> None:
    event = data.draw(messages(message))
    event.envelope.event_id = "e-1"
    event.envelope.schema_version = 1
    try:
        event = events.decode(event_type, event.SerializeToString())
    except PoisonMessage:
        return  # dead-lettered by the kit before any handler
    before = len(consumers.dead)
    rpc_outcome(consumers.deliver(event_type, event))
    assert all(r.isupper() for r in consumers.dead[before:])
