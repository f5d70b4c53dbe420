"""Embedder on the embedding service's gRPC API, called as the caller (its key is forwarded)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops_inference.domain.model import Embeddings
from llmops_kit.grpc_client import call_peer


class EmbeddingClient:
    def __init__(self, address: str, timeout_seconds: float) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = embedding_pb2_grpc.EmbeddingServiceStub(self.channel)
        self.timeout = timeout_seconds
        self._model = ""

    async def embed_texts(self, texts: Sequence[str]) -> Embeddings:
        resp = await call_peer(self.stub.Embed, embedding_pb2.EmbedRequest(texts=list(texts)),
                               peer="embedding", timeout=self.timeout,
                               unavailable="EMBEDDING_UNAVAILABLE")
        self._model = resp.model or self._model
        return Embeddings([list(v.values) for v in resp.vectors], resp.model)

    async def model_name(self) -> str:
        if not self._model:
            info = await call_peer(self.stub.GetModelInfo, embedding_pb2.GetModelInfoRequest(),
                                   peer="embedding", timeout=self.timeout,
                                   unavailable="EMBEDDING_UNAVAILABLE")
            self._model = info.model
        return self._model

    async def close(self) -> None:
        await self.channel.close()
