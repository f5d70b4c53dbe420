"""The QueryEmbedder port: the embedding service's Embed over gRPC (grpc.aio)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops_kit.errors import Unavailable
from llmops_kit.grpc_client import call_peer
from llmops_vectorstore.settings import EmbeddingClientSettings


class EmbeddingClient:
    """Queries go as the caller (their key is forwarded); background work (re-embedding)
    has no caller and uses `background_key`: the configured service key, else the one given."""

    def __init__(
        self, settings: EmbeddingClientSettings, background_key: str | None = None
    ) -> None:
        self.settings = settings
        key = settings.api_key
        self.background_key = key.get_secret_value() if key else background_key
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

    async def embed_query(self, text: str, model: str = "") -> list[float]:
        key = self.settings.api_key
        # A bad query (e.g. too long for the model) comes back as INVALID_ARGUMENT with the
        # embedding service's reason: the caller's fault, passed on as such.
        vectors = await self._embed([text], model, key.get_secret_value() if key else None)
        return vectors[0]

    async def embed_texts(self, texts: Sequence[str], model: str) -> list[list[float]]:
        return await self._embed(texts, model, self.background_key)

    async def model_info(self, model: str) -> tuple[str, int]:
        response = await call_peer(
            self._connect().GetModelInfo, embedding_pb2.GetModelInfoRequest(model=model),
            peer=f"embedding service at {self.settings.address}",
            timeout=self.settings.timeout_seconds, unavailable="EMBEDDING_UNAVAILABLE",
            api_key=self.background_key,
        )
        return response.model, response.dimensions

    async def _embed(
        self, texts: Sequence[str], model: str, api_key: str | None
    ) -> list[list[float]]:
        response = await call_peer(
            self._connect().Embed,
            embedding_pb2.EmbedRequest(texts=list(texts), normalize=True, model=model),
            peer=f"embedding service at {self.settings.address}",
            timeout=self.settings.timeout_seconds, unavailable="EMBEDDING_UNAVAILABLE",
            api_key=api_key,
        )
        if len(response.vectors) != len(texts):
            raise Unavailable(
                "EMBEDDING_UNAVAILABLE",
                f"embedding service returned {len(response.vectors)} vectors for "
                f"{len(texts)} texts",
            )
        return [list(v.values) for v in response.vectors]

