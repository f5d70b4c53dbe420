""""The documents do not cover this": the policy, the language and the checks."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from llmops_inference.domain.model import Embeddings, Passage
from llmops_inference.domain.refusal import (
    MESSAGES,
    AnswerPolicies,
    AnswerPolicy,
    GroundingCheck,
    best_similarity,
    language,
    message,
    weak_retrieval,
)
from llmops_inference.settings import Settings

pytestmark = pytest.mark.unit


def p(similarity: float | None, text: str = "Vacation is 25 days.") -> Passage:
    return Passage(1, "d.md", f"c{similarity}", "D", text, 0.5, similarity=similarity)


@pytest.mark.parametrize(("text", "lang"), [
    ("How many vacation days?", "en"),
    ("재택 근무는 주 몇 회 가능한가요?", "ko"),
    ("IT 헬프데스크 내선 번호는 무엇인가요?", "ko"),  # mostly Hangul with Latin letters
    ("What does 재택 mean in the HR portal policy?", "en"),
    ("123?", "en"),
])
def test_the_message_is_in_the_question_language(text: str, lang: str) -> None:
    assert language(text) == lang
    assert message(text) == MESSAGES[lang]


def test_weak_retrieval_by_the_best_known_similarity() -> None:
    policy = AnswerPolicy(min_retrieval_score=0.3)
    assert weak_retrieval(policy, [p(0.1), p(0.29)])
    assert not weak_retrieval(policy, [p(0.1), p(0.31)])
    assert weak_retrieval(policy, [])  # nothing retrieved at all
    # A store that does not report similarities never triggers it.
    assert not weak_retrieval(policy, [p(None)])
    assert best_similarity([p(None), p(0.2)]) == 0.2 and best_similarity([p(None)]) is None
    assert not weak_retrieval(AnswerPolicy(min_retrieval_score=None), [])


def test_policies_per_tenant() -> None:
    strict = AnswerPolicy(0.5, 0.6)
    book = AnswerPolicies(AnswerPolicy(), {"acme": strict})
    assert book.for_tenant("acme") is strict and book.for_tenant("globex") == AnswerPolicy()
    with pytest.raises(ValueError, match="min_groundedness"):
        AnswerPolicy(min_groundedness=1.5)


def test_policies_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_INFERENCE_ANSWER_POLICIES",
                       '{"default": {"min_retrieval_score": 0.2}, '
                       '"tenants": {"acme": {"min_groundedness": 0.5}, '
                       '"open": {"min_retrieval_score": null}}}')
    book = Settings().answer_policies.policies()
    assert book.default == AnswerPolicy(0.2, None)
    assert book.for_tenant("acme") == AnswerPolicy(0.2, 0.5)  # the rest from the default
    assert book.for_tenant("open") == AnswerPolicy(None, None)
    monkeypatch.setenv("LLMOPS_INFERENCE_ANSWER_POLICIES",
                       '{"tenants": {"acme": {"min_retrieval_score": 3}}}')
    with pytest.raises(ValidationError, match="min_retrieval_score"):
        Settings().answer_policies.policies()


def test_default_policy() -> None:
    s = Settings()
    assert s.answer_policies.policies().default == AnswerPolicy(0.3, None)
    assert s.context_token_budget == 1200


class AxisEmbedder:
    """Texts about vacation point one way, everything else the other."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed_texts(self, texts: Sequence[str]) -> Embeddings:
        self.calls.append(list(texts))
        return Embeddings([[1.0, 0.0] if "vacation" in t.lower() else [0.0, 1.0]
                           for t in texts], "axis")

    async def model_name(self) -> str:
        return "axis"


async def test_grounding_scores_the_answer_against_the_passages() -> None:
    embedder = AxisEmbedder()
    check = GroundingCheck(embedder, threshold=0.5)
    passages = [p(0.5, "Vacation is 25 days a year.")]
    assert await check.score("You get 25 vacation days. The moon is far.", passages) == 0.5
    assert embedder.calls == [["You get 25 vacation days.", "The moon is far.",
                               "Vacation is 25 days a year."]]
    policy = AnswerPolicy(min_groundedness=0.6)
    assert await check.unsupported(policy, "The moon is far. Mars too.", passages)
    assert not await check.unsupported(policy, "Vacation: 25 days.", passages)
    assert not await check.unsupported(AnswerPolicy(), "The moon is far.", passages)
    assert await check.score("", passages) is None
    assert not await check.unsupported(policy, "[1]", passages)  # nothing to score
