"""The QueryEmbedder port: the embedding service's Embed over gRPC (grpc.aio)."""

from __future__ import annotations

import grpc

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops_kit.errors import Unavailable
from llmops_kit.grpc_client import call_peer
from llmops_vectorstore.settings import EmbeddingClientSettings


class EmbeddingClient:
    def __init__(self, settings: EmbeddingClientSettings) -> None:
        self.settings = settings
        self._channel: grpc.aio.Channel | None = None
        self._stub: embedding_pb2_grpc.EmbeddingServiceStub | None = None

    def _connect(self) -> embedding_pb2_grpc.EmbeddingServiceStub:
        # Created on first use so it binds to the running event loop.
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self.settings.address)
            self._stub = embedding_pb2_grpc.EmbeddingServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None

    async def embed_query(self, text: str) -> list[float]:
        stub = self._connect()
        key = self.settings.api_key
        # A bad query (e.g. too long for the model) comes back as INVALID_ARGUMENT with the
        # embedding service's reason: the caller's fault, passed on as such.
        response = await call_peer(
            stub.Embed, embedding_pb2.EmbedRequest(texts=[text], normalize=True),
            peer=f"embedding service at {self.settings.address}",
            timeout=self.settings.timeout_seconds, unavailable="EMBEDDING_UNAVAILABLE",
            api_key=key.get_secret_value() if key else None,
        )
        if len(response.vectors) != 1:
            raise Unavailable(
                "EMBEDDING_UNAVAILABLE",
                f"embedding service returned {len(response.vectors)} vectors for one text",
            )
        return list(response.vectors[0].values)

