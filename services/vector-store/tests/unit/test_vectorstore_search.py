"""SearchService validation, defaults and query embedding (fake store and embedder)."""

from __future__ import annotations

import pytest

from llmops_kit.errors import InvalidArgument
from llmops_vectorstore.domain.indexing import Indexer
from llmops_vectorstore.domain.model import (
    ChunkRecord,
    Filter,
    SearchMode,
    SearchRequest,
    VectorBatch,
)
from llmops_vectorstore.domain.search import SearchService

pytestmark = pytest.mark.unit

DIMS = 4


@pytest.fixture
def service(store, embedder) -> SearchService:
    return SearchService(store, embedder, DIMS)


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (SearchRequest(query="  ", mode=SearchMode.KEYWORD), "EMPTY_QUERY"),
        (SearchRequest(query="", mode=SearchMode.HYBRID, vector=[1, 0, 0, 0]), "EMPTY_QUERY"),
        (SearchRequest(), "EMPTY_QUERY"),
        (SearchRequest(query="q", top_k=101), "TOP_K_TOO_LARGE"),
        (SearchRequest(query="q", mode=SearchMode.HYBRID, alpha=1.5), "BAD_ALPHA"),
        (SearchRequest(query="q", mode=SearchMode.HYBRID, alpha=float("nan")), "BAD_ALPHA"),
        (SearchRequest(vector=[1.0, 2.0], mode=SearchMode.VECTOR), "VECTOR_DIMENSION_MISMATCH"),
        (SearchRequest(query="q", filters=[Filter("", "x")]), "BAD_FILTER"),
        (SearchRequest(query="q", filters=[Filter("a=b", "x")]), "BAD_FILTER"),
        (SearchRequest(query="q", filters=[Filter("k", "v")] * 33), "TOO_MANY_FILTERS"),
        (SearchRequest(query="x" * 20_001), "QUERY_TOO_LONG"),
    ],
)
async def test_invalid_requests_name_their_reason(service, store, request_, reason):
    with pytest.raises(InvalidArgument) as info:
        await service.search("acme", request_)
    assert info.value.reason == reason
    assert store.queries == []


async def test_defaults(service, embedder):
    plan = await service.plan(SearchRequest(query=" what is rag "))
    assert plan.mode is SearchMode.HYBRID
    assert plan.limit == 5 and plan.alpha == 0.5 and plan.text == "what is rag"
    assert embedder.calls == ["what is rag"]
    vector_only = await service.plan(SearchRequest(vector=[0, 1, 0, 0]))
    assert vector_only.mode is SearchMode.VECTOR and vector_only.vector == [0, 1, 0, 0]


async def test_given_vector_is_not_re_embedded(service, embedder):
    plan = await service.plan(SearchRequest(query="q", vector=[0, 0, 1, 0], alpha=0.25))
    assert plan.vector == [0, 0, 1, 0] and plan.alpha == 0.25
    assert embedder.calls == []


async def test_keyword_mode_never_embeds(service, embedder):
    plan = await service.plan(SearchRequest(query="q", mode=SearchMode.KEYWORD, top_k=7))
    assert plan.vector is None and plan.limit == 7
    assert embedder.calls == []


async def test_alpha_outside_hybrid_is_ignored(service):
    plan = await service.plan(SearchRequest(query="q", mode=SearchMode.VECTOR, alpha=7.0))
    assert plan.mode is SearchMode.VECTOR


async def test_tenant_with_nothing_gets_no_hits(service):
    result = await service.search("nobody", SearchRequest(query="anything"))
    assert result.hits == [] and result.mode is SearchMode.HYBRID
    stats = await service.stats("nobody")
    assert (stats.chunk_count, stats.document_count) == (0, 0)


async def test_search_and_get_chunks_stay_in_tenant(service, store):
    indexer = Indexer(store)
    for tenant in ("acme", "globex"):
        chunk = ChunkRecord(f"{tenant}-c", "d", 1, 0, f"{tenant} text", [1.0, 0, 0, 0])
        await indexer.apply_vectors(tenant, VectorBatch("d", 1, [chunk]))
    result = await service.search("acme", SearchRequest(vector=[1.0, 0, 0, 0], top_k=10))
    assert [h.chunk_id for h in result.hits] == ["acme-c"]
    assert await service.get_chunks("acme", ["globex-c"]) == []
    assert [h.chunk_id for h in await service.get_chunks("acme", ["acme-c", "acme-c"])] == [
        "acme-c"
    ]


async def test_get_chunks_validation(service):
    with pytest.raises(InvalidArgument) as info:
        await service.get_chunks("acme", ["a", " "])
    assert info.value.reason == "EMPTY_CHUNK_ID"
    with pytest.raises(InvalidArgument) as info:
        await service.get_chunks("acme", ["a"] * 1001)
    assert info.value.reason == "TOO_MANY_CHUNK_IDS"
    assert await service.get_chunks("acme", []) == []
