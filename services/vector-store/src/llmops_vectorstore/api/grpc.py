"""VectorStoreService servicer: proto <-> domain.

The tenant is always the one the kit's wrapper resolved from the caller's API key
(`current_tenant()`); nothing in a request can name another tenant.
"""

from __future__ import annotations

from typing import Any

import grpc

from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_kit.audit import AuditLog
from llmops_kit.auth import Role
from llmops_kit.context import current_tenant
from llmops_kit.errors import FailedPrecondition, Unauthenticated
from llmops_vectorstore.api import embedding_admin
from llmops_vectorstore.domain.model import Filter, Hit, SearchMode, SearchRequest
from llmops_vectorstore.domain.reembed import ReEmbedder
from llmops_vectorstore.domain.search import SearchService

SERVICE_FULL_NAME = vectorstore_pb2.DESCRIPTOR.services_by_name["VectorStoreService"].full_name
# The least role each RPC needs (enforced by the kit's gRPC wrapper).
ROLES = {"Search": Role.MEMBER, "GetChunks": Role.MEMBER, "Stats": Role.MEMBER,
         "SwitchEmbeddingModel": Role.ADMIN, "GetEmbeddingStatus": Role.ADMIN}

_MODE_FROM_PB = {
    vectorstore_pb2.SEARCH_MODE_VECTOR: SearchMode.VECTOR,
    vectorstore_pb2.SEARCH_MODE_HYBRID: SearchMode.HYBRID,
    vectorstore_pb2.SEARCH_MODE_KEYWORD: SearchMode.KEYWORD,
}
_MODE_TO_PB = {mode: pb for pb, mode in _MODE_FROM_PB.items()}


def _tenant() -> str:
    tenant = current_tenant()
    if not tenant:  # the kit's wrapper refuses unauthenticated calls before we get here
        raise Unauthenticated("MISSING_TENANT", "no tenant bound to this call")
    return tenant


def search_request(request: Any) -> SearchRequest:
    return SearchRequest(
        query=request.query,
        vector=list(request.vector),
        top_k=request.top_k,
        mode=_MODE_FROM_PB.get(request.mode),
        alpha=request.alpha if request.HasField("alpha") else None,
        filters=[Filter(f.key, f.equals) for f in request.filters],
        vector_model=request.vector_model,
    )


def hit_pb(hit: Hit) -> vectorstore_pb2.SearchHit:
    return vectorstore_pb2.SearchHit(
        chunk_id=hit.chunk_id,
        document_id=hit.document_id,
        document_version=hit.document_version,
        chunk_index=hit.chunk_index,
        text=hit.text,
        score=hit.score,
        title=hit.title,
        source=hit.source,
        metadata=dict(hit.metadata),
        model=hit.model,
        similarity=hit.similarity,
    )


class VectorStoreServicer(vectorstore_pb2_grpc.VectorStoreServiceServicer):  # type: ignore[misc]
    def __init__(
        self, service: SearchService, reembed: ReEmbedder | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.service = service
        self.reembed = reembed
        self.audit = audit

    def _job(self) -> ReEmbedder:
        if self.reembed is None:
            raise FailedPrecondition("NO_REEMBED", "this server cannot switch embedding models")
        return self.reembed

    async def SwitchEmbeddingModel(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> vectorstore_pb2.EmbeddingStatus:
        return await embedding_admin.switch(self._job(), request.model, self.audit)

    async def GetEmbeddingStatus(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> vectorstore_pb2.EmbeddingStatus:
        return await embedding_admin.status(self._job())

    async def Search(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> vectorstore_pb2.SearchResponse:
        tenant = _tenant()
        # Query text is embedded by the embedding service as this same caller (the kit binds
        # the caller's key; the embedding client forwards it).
        result = await self.service.search(tenant, search_request(request))
        return vectorstore_pb2.SearchResponse(
            hits=[hit_pb(h) for h in result.hits], mode=_MODE_TO_PB[result.mode]
        )

    async def GetChunks(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> vectorstore_pb2.GetChunksResponse:
        hits = await self.service.get_chunks(_tenant(), list(request.chunk_ids))
        return vectorstore_pb2.GetChunksResponse(chunks=[hit_pb(h) for h in hits])

    async def Stats(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> vectorstore_pb2.StatsResponse:
        stats = await self.service.stats(_tenant())
        return vectorstore_pb2.StatsResponse(
            chunk_count=stats.chunk_count,
            document_count=stats.document_count,
            collection=stats.collection,
        )
