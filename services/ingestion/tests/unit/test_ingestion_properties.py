"""Property tests of ingestion's request converters, on the gRPC path (SubmitDocuments,
DeleteDocument, GetDocumentStatus) and the event path (DocumentSubmitted -> prepare): arbitrary
field values give a result or a DomainError with a reason, never another exception."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings

from llmops.ingestion.v1 import events_pb2
from llmops.ingestion.v1 import ingestion_pb2 as pb
from llmops_ingestion.adapters.sql_store import SqlDocumentStore, make_engine
from llmops_ingestion.adapters.tokenizers import WordTokenizer
from llmops_ingestion.api.convert import incoming
from llmops_ingestion.api.grpc import IngestionServicer
from llmops_ingestion.domain.chunking import ChunkingPolicy
from llmops_ingestion.domain.errors import InvalidDocument
from llmops_ingestion.domain.model import PreparedDocument
from llmops_ingestion.domain.service import IngestionService, Limits
from llmops_kit.errors import DomainError
from llmops_kit.proto_strategies import assert_client_error, messages, rpc_outcome

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=2000,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


class NullPublisher:
    async def publish_chunks(self, doc: PreparedDocument, version: int) -> None:
        return None

    async def publish_deleted(self, tenant: str, document_id: str, up_to_version: int) -> None:
        return None


@pytest.fixture
def service(tmp_path: Path) -> IngestionService:
    store = SqlDocumentStore(make_engine(f"sqlite:///{tmp_path}/ingestion.db"))
    return IngestionService(store, NullPublisher(), WordTokenizer(), ChunkingPolicy(50, 10),
                            Limits(max_document_bytes=10_000, max_batch_documents=3))


@PROPERTY
@given(request=messages(pb.SubmitDocumentsRequest))
def test_submit_documents(service: IngestionService, request: pb.SubmitDocumentsRequest) -> None:
    result = rpc_outcome(IngestionServicer(service).SubmitDocuments(request, None))
    assert_client_error(result)
    if not isinstance(result, DomainError):
        assert [r.document_id for r in result.results] == \
            [d.document_id for d in request.documents]


@PROPERTY
@given(request=messages(pb.DeleteDocumentRequest))
def test_delete_document(service: IngestionService, request: pb.DeleteDocumentRequest) -> None:
    result = rpc_outcome(IngestionServicer(service).DeleteDocument(request, None))
    assert_client_error(result, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


@PROPERTY
@given(request=messages(pb.GetDocumentStatusRequest))
def test_get_document_status(service: IngestionService,
                             request: pb.GetDocumentStatusRequest) -> None:
    result = rpc_outcome(IngestionServicer(service).GetDocumentStatus(request, None))
    assert_client_error(result, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


@PROPERTY
@given(event=messages(events_pb2.DocumentSubmitted))
def test_document_submitted_event_prepares_or_is_a_dead_letter_reason(
        service: IngestionService, event: events_pb2.DocumentSubmitted) -> None:
    # what api/events.py's consumer does before submit: InvalidDocument -> DLQ with its reason
    try:
        prepared = service.prepare(incoming(event.envelope.tenant_id, event.document))
    except InvalidDocument as exc:
        assert exc.reason and exc.reason.upper() == exc.reason
    else:
        assert prepared.document_id == event.document.document_id
