"""IngestionService over gRPC: translate, call the domain, translate back."""

from __future__ import annotations

import grpc

from llmops.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from llmops_ingestion.api.convert import STATES, incoming
from llmops_ingestion.domain.service import IngestionService
from llmops_kit.auth import Role
from llmops_kit.context import current_tenant
from llmops_kit.errors import Unauthenticated, Unavailable

# The least role each RPC needs (enforced by the kit's gRPC wrapper): members ingest and
# read status; deleting a document removes it for everyone in the tenant.
ROLES = {"SubmitDocuments": Role.MEMBER, "GetDocumentStatus": Role.MEMBER,
         "DeleteDocument": Role.MAINTAINER}


def _tenant() -> str:
    tenant = current_tenant()
    if not tenant:
        raise Unauthenticated("NO_TENANT", "request has no tenant")
    return tenant


class IngestionServicer(ingestion_pb2_grpc.IngestionServiceServicer):
    def __init__(self, service: IngestionService) -> None:
        self.service = service

    async def SubmitDocuments(
        self, request: ingestion_pb2.SubmitDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.SubmitDocumentsResponse:
        tenant = _tenant()
        prepared = self.service.prepare_batch([incoming(tenant, d) for d in request.documents])
        results = []
        for doc in prepared:
            try:
                outcome = await self.service.submit(doc)
            except Exception as exc:  # the bus or the store is down: the caller may retry
                raise Unavailable("BUS_UNAVAILABLE", f"could not publish {doc.document_id}: "
                                  f"{type(exc).__name__}: {exc}") from exc
            results.append(ingestion_pb2.SubmitResult(
                document_id=outcome.document_id,
                version=outcome.version,
                chunk_count=outcome.chunk_count,
                unchanged=outcome.unchanged,
                duplicate_chunks_dropped=outcome.duplicates_dropped,
            ))
        return ingestion_pb2.SubmitDocumentsResponse(results=results)

    async def DeleteDocument(
        self, request: ingestion_pb2.DeleteDocumentRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.DeleteDocumentResponse:
        version = await self.service.delete(_tenant(), request.document_id)
        return ingestion_pb2.DeleteDocumentResponse(
            document_id=request.document_id, deleted_version=version
        )

    async def GetDocumentStatus(
        self, request: ingestion_pb2.GetDocumentStatusRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.GetDocumentStatusResponse:
        record = await self.service.status(_tenant(), request.document_id)
        resp = ingestion_pb2.GetDocumentStatusResponse(
            document_id=record.document_id,
            state=STATES[record.state],
            version=record.version,
            chunk_count=record.chunk_count,
            indexed_chunk_count=record.indexed_chunk_count,
            title=record.title,
            source=record.source,
        )
        resp.updated_at.FromDatetime(record.updated_at)
        return resp
