"""The real bundled model (loaded once per session) and a real gRPC server on a socket."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import grpc
import pytest

from llmops.embedding.v1 import embedding_pb2_grpc
from llmops_embedding.adapters.sentence_transformers import SentenceTransformerEmbedder
from llmops_embedding.bootstrap import build_grpc
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_embedding.settings import EncoderSettings, Settings
from llmops_kit.grpc_server import GrpcServer


@pytest.fixture(scope="session")
async def st_embedder() -> SentenceTransformerEmbedder:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return await SentenceTransformerEmbedder.load(EncoderSettings())


@pytest.fixture(scope="session")
async def embedding_server(st_embedder) -> AsyncIterator[GrpcServer]:
    settings = Settings(grpc_host="127.0.0.1", grpc_port=0)
    server = build_grpc(settings, EmbeddingService(st_embedder))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0)


@pytest.fixture
async def embedding_stub(embedding_server) -> AsyncIterator[object]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{embedding_server.port}") as channel:
        yield embedding_pb2_grpc.EmbeddingServiceStub(channel)
