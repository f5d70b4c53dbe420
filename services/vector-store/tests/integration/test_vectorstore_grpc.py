"""VectorStoreService over real gRPC sockets on a real Weaviate.

The embedding service is a small stand-in servicer behind the kit's real GrpcServer (auth
included), so the test can see which API key the vector-store forwarded.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_kit.auth import Principal, Role
from llmops_kit.context import current_tenant
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.key_resolver import KeyResolver
from llmops_kit.testing import error_reason
from llmops_vectorstore.adapters.embedding_client import EmbeddingClient
from llmops_vectorstore.bootstrap import build_grpc
from llmops_vectorstore.domain.indexing import Indexer
from llmops_vectorstore.domain.model import ChunkRecord, VectorBatch
from llmops_vectorstore.domain.search import SearchService
from llmops_vectorstore.settings import EmbeddingClientSettings, Settings

pytestmark = pytest.mark.integration

DIMS = 8
ACME = (("x-api-key", "dev-key-acme"),)
GLOBEX = (("x-api-key", "dev-key-globex"),)


def axis(i: int) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(DIMS)]


class StubEmbedding(embedding_pb2_grpc.EmbeddingServiceServicer):  # type: ignore[misc]
    """Every text embeds to axis 0; remembers the tenant each call authenticated as."""

    def __init__(self) -> None:
        self.tenants: list[str | None] = []

    async def Embed(self, request: Any, context: Any) -> Any:
        self.tenants.append(current_tenant())
        return embedding_pb2.EmbedResponse(
            vectors=[embedding_pb2.Vector(values=axis(0)) for _ in request.texts],
            model="stub", dimensions=DIMS,
        )


@pytest.fixture(scope="module")
async def stub_embedding() -> AsyncIterator[tuple[StubEmbedding, int]]:
    stub = StubEmbedding()
    keys = {"dev-key-acme": Principal("acme", Role.MAINTAINER),
            "dev-key-globex": Principal("globex", Role.MAINTAINER)}
    server = GrpcServer("127.0.0.1", 0, KeyResolver(None, keys))
    server.add(embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server, stub,
               ["llmops.embedding.v1.EmbeddingService"],
               {"Embed": Role.MEMBER, "GetModelInfo": Role.MEMBER})
    port = await server.start()
    try:
        yield stub, port
    finally:
        await server.stop(0)


async def serve_vector_store(store: Any, embedding_address: str) -> tuple[GrpcServer, Any]:
    client = EmbeddingClient(EmbeddingClientSettings(address=embedding_address,
                                                     timeout_seconds=2))
    server = build_grpc(Settings(grpc_host="127.0.0.1", grpc_port=0),
                        SearchService(store, client, DIMS))
    await server.start()
    return server, client


@pytest.fixture(scope="module")
async def stub(weaviate_store, stub_embedding) -> AsyncIterator[Any]:
    indexer = Indexer(weaviate_store)
    for tenant, text in (("acme", "acme quarterly report"), ("globex", "globex secret report")):
        chunk = ChunkRecord(str(uuid.uuid5(uuid.NAMESPACE_URL, tenant)), f"{tenant}-doc", 1, 0,
                            text, axis(0), title=tenant, source="s", metadata={"owner": tenant})
        await indexer.apply_vectors(tenant, VectorBatch(f"{tenant}-doc", 1, [chunk]))
    server, client = await serve_vector_store(weaviate_store, f"127.0.0.1:{stub_embedding[1]}")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield vectorstore_pb2_grpc.VectorStoreServiceStub(channel)
    finally:
        await server.stop(0)
        await client.close()


@pytest.mark.parametrize("mode", [
    vectorstore_pb2.SEARCH_MODE_UNSPECIFIED,
    vectorstore_pb2.SEARCH_MODE_VECTOR,
    vectorstore_pb2.SEARCH_MODE_HYBRID,
    vectorstore_pb2.SEARCH_MODE_KEYWORD,
])
async def test_search_text_sees_only_callers_tenant(stub, stub_embedding, mode):
    embedding, _ = stub_embedding
    embedding.tenants.clear()
    for key, tenant in ((ACME, "acme"), (GLOBEX, "globex")):
        response = await stub.Search(
            vectorstore_pb2.SearchRequest(query="report", mode=mode, top_k=10), metadata=key
        )
        assert [h.document_id for h in response.hits] == [f"{tenant}-doc"]
        hit = response.hits[0]
        assert dict(hit.metadata) == {"owner": tenant} and hit.title == tenant
    expected_mode = mode or vectorstore_pb2.SEARCH_MODE_HYBRID
    assert response.mode == expected_mode
    if mode == vectorstore_pb2.SEARCH_MODE_KEYWORD:
        assert embedding.tenants == []
    else:
        # The query was embedded with each caller's own key (so as the same tenant).
        assert embedding.tenants == ["acme", "globex"]


async def test_get_chunks_and_stats_are_per_tenant(stub):
    acme_chunk = str(uuid.uuid5(uuid.NAMESPACE_URL, "acme"))
    globex_chunk = str(uuid.uuid5(uuid.NAMESPACE_URL, "globex"))
    request = vectorstore_pb2.GetChunksRequest(chunk_ids=[acme_chunk, globex_chunk])
    got = await stub.GetChunks(request, metadata=ACME)
    assert [c.chunk_id for c in got.chunks] == [acme_chunk]
    stats = await stub.Stats(vectorstore_pb2.StatsRequest(), metadata=GLOBEX)
    assert (stats.chunk_count, stats.document_count) == (1, 1)
    assert stats.collection.startswith("TestChunk")


@pytest.mark.parametrize(("request_", "expected"), [
    (vectorstore_pb2.SearchRequest(query="x", top_k=101), "TOP_K_TOO_LARGE"),
    (vectorstore_pb2.SearchRequest(mode=vectorstore_pb2.SEARCH_MODE_KEYWORD), "EMPTY_QUERY"),
    (vectorstore_pb2.SearchRequest(query="x", alpha=2.0), "BAD_ALPHA"),
    (vectorstore_pb2.SearchRequest(vector=[1.0, 2.0]), "VECTOR_DIMENSION_MISMATCH"),
])
async def test_invalid_argument(stub, request_, expected):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Search(request_, metadata=ACME)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(info.value) == expected


async def test_unauthenticated(stub):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Search(vectorstore_pb2.SearchRequest(query="x"))
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_embedding_down_is_unavailable(weaviate_store):
    server, client = await serve_vector_store(weaviate_store, "127.0.0.1:1")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            vs = vectorstore_pb2_grpc.VectorStoreServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await vs.Search(vectorstore_pb2.SearchRequest(query="x"), metadata=ACME)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            assert error_reason(info.value) == "EMBEDDING_UNAVAILABLE"
            # A given vector needs no embedding service.
            ok = await vs.Search(vectorstore_pb2.SearchRequest(vector=axis(0)), metadata=ACME)
            assert ok.mode == vectorstore_pb2.SEARCH_MODE_VECTOR
    finally:
        await server.stop(0)
        await client.close()
