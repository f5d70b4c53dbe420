"""Hybrid ranking: defaults from the settings, question words out of the BM25 half, cosine."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from llmops_vectorstore.domain.model import SearchMode, SearchRequest
from llmops_vectorstore.domain.ranking import Fusion, HybridRanking, cosine
from llmops_vectorstore.domain.search import SearchService
from llmops_vectorstore.settings import Settings

pytestmark = pytest.mark.unit


def test_question_words_are_left_out_of_the_keyword_text() -> None:
    r = HybridRanking(question_stopwords=True)
    assert r.keyword_text("What do I do if my laptop is lost or stolen?") == "laptop lost stolen"
    assert r.keyword_text("Which regions is Orbit available in?") == "regions Orbit available"
    # Nothing but question words: the whole text, not an empty BM25 query.
    assert r.keyword_text("What is it?") == "What is it?"
    assert r.keyword_text("재택 근무는 주 몇 회 가능한가요?") == "재택 근무는 주 몇 회 가능한가요"
    assert HybridRanking().keyword_text("What do I do?") == "What do I do?"


def test_alpha_must_be_a_weight() -> None:
    with pytest.raises(ValueError, match="alpha"):
        HybridRanking(alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        HybridRanking(alpha=math.nan)


def test_cosine() -> None:
    assert cosine([1.0, 0.0], [2.0, 0.0]) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [0.0, 3.0]) == pytest.approx(0.0)
    assert cosine([1.0, 1.0], [1.0, 0.0]) == pytest.approx(1 / math.sqrt(2))
    assert cosine([0.0, 0.0], [1.0, 0.0]) == 0.0
    assert cosine([1.0], [1.0, 0.0]) == 0.0


async def test_the_plan_carries_the_ranking(store, embedder) -> None:
    ranking = HybridRanking(alpha=0.7, fusion=Fusion.RANKED, question_stopwords=True)
    service = SearchService(store, embedder, 4, ranking=ranking)
    plan = await service.plan(SearchRequest(query="What do I do if my laptop is lost?"))
    assert plan.mode is SearchMode.HYBRID
    assert (plan.alpha, plan.fusion) == (0.7, Fusion.RANKED)
    assert plan.keyword_text == "laptop lost" and plan.bm25_text == "laptop lost"
    # The vector half embeds the whole question.
    assert embedder.calls == ["What do I do if my laptop is lost?"]
    # A request's own alpha wins; keyword search keeps its text whole.
    assert (await service.plan(SearchRequest(query="q laptop", alpha=0.2))).alpha == 0.2
    keyword = await service.plan(SearchRequest(query="what laptop", mode=SearchMode.KEYWORD))
    assert keyword.keyword_text == "" and keyword.bm25_text == "what laptop"


async def test_default_service_ranks_as_before(store, embedder) -> None:
    plan = await SearchService(store, embedder, 4).plan(SearchRequest(query="what is rag"))
    assert (plan.alpha, plan.fusion, plan.bm25_text) == (0.5, Fusion.RELATIVE_SCORE,
                                                         "what is rag")


def test_settings_default_to_the_reviewed_ranking() -> None:
    # bench/hybrid_search_review.py's best MRR on the evaluation set (docs/testing.md).
    assert Settings().hybrid.ranking() == HybridRanking(0.25, Fusion.RANKED, True)


def test_settings_build_the_ranking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_VECTORSTORE_HYBRID__ALPHA", "0.8")
    monkeypatch.setenv("LLMOPS_VECTORSTORE_HYBRID__FUSION", "ranked")
    monkeypatch.setenv("LLMOPS_VECTORSTORE_HYBRID__QUESTION_STOPWORDS", "false")
    assert Settings().hybrid.ranking() == HybridRanking(0.8, Fusion.RANKED, False)
    monkeypatch.setenv("LLMOPS_VECTORSTORE_HYBRID__FUSION", "borda")
    with pytest.raises(ValidationError, match="fusion"):
        Settings()
