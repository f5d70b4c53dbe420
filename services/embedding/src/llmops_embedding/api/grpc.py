"""EmbeddingService servicer: proto <-> domain. Auth and error mapping live in the kit's wrapper."""

from __future__ import annotations

from typing import Any

import grpc

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_kit.auth import Role

SERVICE_FULL_NAME = embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"].full_name
# The least role each RPC needs (enforced by the kit's gRPC wrapper).
ROLES = {"Embed": Role.MEMBER, "GetModelInfo": Role.MEMBER}


class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):  # type: ignore[misc]
    def __init__(self, service: EmbeddingService) -> None:
        self.service = service

    async def Embed(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> embedding_pb2.EmbedResponse:
        normalize = request.normalize if request.HasField("normalize") else True
        result = await self.service.embed(
            list(request.texts), normalize=normalize, model=request.model
        )
        return embedding_pb2.EmbedResponse(
            vectors=[embedding_pb2.Vector(values=v) for v in result.vectors],
            model=result.model,
            dimensions=result.dimensions,
        )

    async def GetModelInfo(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> embedding_pb2.GetModelInfoResponse:
        info = self.service.model_info(request.model)
        return embedding_pb2.GetModelInfoResponse(
            model=info.model,
            dimensions=info.dimensions,
            max_seq_length=info.max_seq_length,
            backend=info.backend,
            served_models=list(info.served_models),
            key=info.key,
        )
