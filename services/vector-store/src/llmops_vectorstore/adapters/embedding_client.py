"""The QueryEmbedder port: the embedding service's Embed over gRPC (grpc.aio)."""

from __future__ import annotations

import logging

import grpc

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops_kit.errors import InvalidArgument, Unavailable
from llmops_kit.grpc_server import caller_metadata, error_reason
from llmops_vectorstore.settings import EmbeddingClientSettings

log = logging.getLogger(__name__)


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

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        key = self.settings.api_key
        return caller_metadata(key.get_secret_value() if key else None)

    async def embed_query(self, text: str) -> list[float]:
        stub = self._connect()
        try:
            response = await stub.Embed(
                embedding_pb2.EmbedRequest(texts=[text], normalize=True),
                metadata=self._metadata(),
                timeout=self.settings.timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            reason = error_reason(exc)
            if exc.code() is grpc.StatusCode.INVALID_ARGUMENT:
                # The query itself is bad (e.g. too long for the model's limits): caller's fault.
                raise InvalidArgument(reason or "BAD_QUERY", exc.details() or "") from exc
            log.warning("embedding service call failed: %s %s", exc.code(), exc.details())
            raise Unavailable(
                "EMBEDDING_UNAVAILABLE",
                f"embedding service at {self.settings.address}: {exc.code().name} "
                f"{reason or ''} {exc.details() or ''}".strip(),
            ) from exc
        if len(response.vectors) != 1:
            raise Unavailable(
                "EMBEDDING_UNAVAILABLE",
                f"embedding service returned {len(response.vectors)} vectors for one text",
            )
        return list(response.vectors[0].values)

