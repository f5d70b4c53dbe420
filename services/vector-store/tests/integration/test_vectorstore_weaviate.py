"""WeaviateStore + Indexer + SearchService against a real Weaviate."""

from __future__ import annotations

import math
import uuid

import pytest

from llmops_vectorstore.domain.indexing import Indexer, Outcome
from llmops_vectorstore.domain.model import (
    ChunkRecord,
    Filter,
    SearchMode,
    SearchRequest,
    StoreQuery,
    VectorBatch,
)
from llmops_vectorstore.domain.ranking import Fusion, HybridRanking
from llmops_vectorstore.domain.search import SearchService

pytestmark = pytest.mark.integration

DIMS = 8


def unit(*components: float) -> list[float]:
    v = list(components) + [0.0] * (DIMS - len(components))
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def chunk_id(doc: str, version: int, index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{doc}/{version}/{index}"))


def batch(
    doc: str, version: int, texts: list[str], vectors: list[list[float]] | None = None,
    title: str = "Title", source: str = "file://a.md", metadata: dict[str, str] | None = None,
) -> VectorBatch:
    vectors = vectors or [unit(1.0, float(i)) for i in range(len(texts))]
    chunks = [
        ChunkRecord(
            chunk_id=chunk_id(doc, version, i), document_id=doc, document_version=version,
            chunk_index=i, text=t, vector=v, title=title, source=source,
            metadata=metadata or {"lang": "en"},
        )
        for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
    ]
    return VectorBatch(doc, version, chunks, total_chunks=len(chunks))


class NoEmbedder:
    async def embed_query(self, text: str) -> list[float]:
        raise AssertionError("these tests always pass vectors")


@pytest.fixture
def indexer(weaviate_store) -> Indexer:
    return Indexer(weaviate_store)


@pytest.fixture
def search(weaviate_store) -> SearchService:
    return SearchService(weaviate_store, NoEmbedder(), DIMS)


async def test_same_batch_twice_keeps_one_copy(weaviate_store, indexer, tenant):
    b = batch("doc", 1, ["alpha", "beta", "gamma"])
    await indexer.apply_vectors(tenant, b)
    await indexer.apply_vectors(tenant, b)
    # Even a raw second upsert (no state check) must not duplicate.
    await weaviate_store.upsert_chunks(tenant, b.chunks)
    stats = await weaviate_store.stats(tenant)
    assert (stats.chunk_count, stats.document_count) == (3, 1)


async def test_new_version_replaces_and_stale_version_is_ignored(weaviate_store, indexer, tenant):
    await indexer.apply_vectors(tenant, batch("doc", 1, ["old one", "old two", "old three"]))
    await indexer.apply_vectors(tenant, batch("doc", 2, ["new one"]))
    stale = await indexer.apply_vectors(tenant, batch("doc", 1, ["old one", "old two"]))
    assert stale.outcome is Outcome.STALE
    hits = await weaviate_store.search(
        tenant, StoreQuery(SearchMode.VECTOR, limit=10, vector=unit(1.0))
    )
    assert [(h.text, h.document_version) for h in hits] == [("new one", 2)]
    state = await weaviate_store.get_document(tenant, "doc")
    assert state is not None and state.latest_version == 2


async def test_delete_all_and_resubmit(weaviate_store, indexer, tenant):
    await indexer.apply_vectors(tenant, batch("doc", 3, ["a", "b"]))
    await indexer.apply_vectors(tenant, batch("other", 1, ["c"]))
    await indexer.apply_delete(tenant, "doc", 0)
    stats = await weaviate_store.stats(tenant)
    assert (stats.chunk_count, stats.document_count) == (1, 1)
    late = await indexer.apply_vectors(tenant, batch("doc", 3, ["a", "b"]))
    assert late.outcome is Outcome.STALE
    assert (await weaviate_store.stats(tenant)).chunk_count == 1
    await indexer.apply_vectors(tenant, batch("doc", 4, ["again"]))
    stats = await weaviate_store.stats(tenant)
    assert (stats.chunk_count, stats.document_count) == (2, 2)


async def test_tenant_isolation_in_every_read(weaviate_store, indexer, search):
    a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    await indexer.apply_vectors(a, batch("shared-id", 1, ["kubernetes cluster upgrade"]))
    await indexer.apply_vectors(b, batch("secret", 1, ["kubernetes cluster secret plan"],
                                         vectors=[unit(1.0)]))
    for mode in SearchMode:
        request = SearchRequest(query="kubernetes cluster", vector=unit(1.0), mode=mode,
                                top_k=100)
        hits = (await search.search(a, request)).hits
        assert hits, mode
        assert {h.document_id for h in hits} == {"shared-id"}, mode
    # B's chunk ids, asked for by A, are not found.
    assert await search.get_chunks(a, [chunk_id("secret", 1, 0)]) == []
    assert len(await search.get_chunks(b, [chunk_id("secret", 1, 0)])) == 1
    assert (await search.stats(a)).chunk_count == 1


async def test_unknown_tenant_gets_nothing(search):
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"
    for mode in SearchMode:
        result = await search.search(nobody, SearchRequest(query="x", vector=unit(1), mode=mode))
        assert result.hits == []
    assert await search.get_chunks(nobody, [str(uuid.uuid4())]) == []
    stats = await search.stats(nobody)
    assert (stats.chunk_count, stats.document_count) == (0, 0)


async def test_tenant_ids_weaviate_would_refuse(indexer, search):
    odd = "Acme Corp/EU ünïcode"
    await indexer.apply_vectors(odd, batch("doc", 1, ["hello"]))
    hits = (await search.search(odd, SearchRequest(vector=unit(1.0)))).hits
    assert [h.text for h in hits] == ["hello"]


async def test_filters(indexer, search, tenant):
    await indexer.apply_vectors(tenant, batch("d1", 1, ["one", "two"], title="Guide",
                                              source="s3://a", metadata={"team": "infra"}))
    await indexer.apply_vectors(tenant, batch("d2", 1, ["three"], title="Guide Two",
                                              source="s3://b", metadata={"team": "ml",
                                                                         "lang": "ko"}))

    async def docs(*filters: Filter) -> set[str]:
        req = SearchRequest(vector=unit(1.0), top_k=100, filters=list(filters))
        return {h.document_id for h in (await search.search(tenant, req)).hits}

    assert await docs(Filter("document_id", "d2")) == {"d2"}
    assert await docs(Filter("source", "s3://a")) == {"d1"}
    assert await docs(Filter("title", "Guide")) == {"d1"}  # exact, not a token match
    assert await docs(Filter("team", "ml")) == {"d2"}
    assert await docs(Filter("team", "ml"), Filter("lang", "ko")) == {"d2"}
    assert await docs(Filter("team", "ml"), Filter("lang", "en")) == set()
    assert await docs(Filter("missing", "x")) == set()
    hit = (await search.search(tenant, SearchRequest(vector=unit(1.0),
                                                     filters=[Filter("team", "ml")]))).hits[0]
    assert dict(hit.metadata) == {"team": "ml", "lang": "ko"}
    assert (hit.title, hit.source, hit.chunk_index) == ("Guide Two", "s3://b", 0)


async def test_vector_scores_are_cosine_similarity(indexer, search, tenant):
    await indexer.apply_vectors(tenant, batch("d", 1, ["x", "y"],
                                              vectors=[unit(1.0), unit(0.0, 1.0)]))
    hits = (await search.search(tenant, SearchRequest(vector=unit(1.0), top_k=2))).hits
    assert [h.text for h in hits] == ["x", "y"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[1].score == pytest.approx(0.0, abs=1e-5)


async def test_hybrid_blends_keyword_and_vector(indexer, search, tenant):
    # "lexical" matches the words but points away; "semantic" points at the query vector.
    await indexer.apply_vectors(tenant, batch(
        "d", 1,
        ["postgres vacuum tuning guide", "database maintenance overview", "cooking pasta"],
        vectors=[unit(0.0, 1.0), unit(1.0), unit(0.0, 0.0, 1.0)],
    ))
    q = unit(1.0)

    async def order(mode: SearchMode, alpha: float | None = None) -> list[str]:
        req = SearchRequest(query="postgres vacuum", vector=q, mode=mode, alpha=alpha, top_k=3)
        return [h.text for h in (await search.search(tenant, req)).hits]

    assert (await order(SearchMode.VECTOR))[0] == "database maintenance overview"
    assert await order(SearchMode.KEYWORD) == ["postgres vacuum tuning guide"]
    assert (await order(SearchMode.HYBRID, alpha=0.0))[0] == "postgres vacuum tuning guide"
    assert (await order(SearchMode.HYBRID, alpha=1.0))[0] == "database maintenance overview"
    hybrid = (await search.search(tenant, SearchRequest(query="postgres vacuum", vector=q))).hits
    assert {h.text for h in hybrid[:2]} == {
        "postgres vacuum tuning guide", "database maintenance overview"
    }
    assert all(0.0 <= h.score <= 1.0 for h in hybrid)


async def test_large_document_replacement(weaviate_store, indexer, tenant):
    texts = [f"chunk {i}" for i in range(300)]
    await indexer.apply_vectors(tenant, batch("big", 1, texts))
    await indexer.apply_vectors(tenant, batch("big", 2, texts[:5]))
    assert (await weaviate_store.stats(tenant)).chunk_count == 5


async def test_hybrid_hits_carry_their_cosine_whatever_the_fused_score(indexer, search, tenant):
    await indexer.apply_vectors(tenant, batch(
        "d", 1, ["postgres vacuum tuning guide", "database maintenance overview"],
        vectors=[unit(0.0, 1.0), unit(1.0, 1.0)]))
    for fusion in (Fusion.RELATIVE_SCORE, Fusion.RANKED):
        service = SearchService(search.store, search.embedder, search.dimensions,
                                ranking=HybridRanking(0.5, fusion))
        hits = (await service.search(tenant, SearchRequest(
            query="postgres vacuum", vector=unit(1.0), mode=SearchMode.HYBRID))).hits
        by_text = {h.text: h.similarity for h in hits}
        assert by_text["postgres vacuum tuning guide"] == pytest.approx(0.0, abs=1e-5)
        assert by_text["database maintenance overview"] == pytest.approx(0.7071, abs=1e-4)
        if fusion is Fusion.RANKED:  # reciprocal ranks: small, whatever the raw scores
            assert all(0.0 < h.score < 0.1 for h in hits)
        else:  # each half scaled to 0..1: the best hit of a half brings its whole weight
            assert max(h.score for h in hits) >= 0.5


async def test_question_words_do_not_rank_a_faq_first(indexer, search, tenant):
    # Both chunks point the same way: only BM25 tells them apart.
    await indexer.apply_vectors(tenant, batch(
        "d", 1,
        ["What do I do if I forget my badge? What do I do when I travel? Do I need a visa?",
         "Report a lost or stolen laptop to the security team within one hour."],
        vectors=[unit(0.0, 1.0), unit(0.0, 1.0)]))
    question = "What do I do if my laptop is lost or stolen?"

    async def first(stopwords: bool) -> str:
        service = SearchService(search.store, search.embedder, search.dimensions,
                                ranking=HybridRanking(0.0, Fusion.RANKED, stopwords))
        hits = (await service.search(tenant, SearchRequest(
            query=question, vector=unit(1.0), mode=SearchMode.HYBRID, top_k=2))).hits
        return hits[0].text

    assert (await first(False)).startswith("What do I do")  # "do I" x6 beats "lost stolen"
    assert (await first(True)).startswith("Report a lost")
