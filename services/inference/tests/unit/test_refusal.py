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
    question_terms,
    term_coverage,
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


Q = "How many vacation days?"


def test_weak_retrieval_by_the_best_known_similarity() -> None:
    policy = AnswerPolicy(min_retrieval_score=0.3, min_term_coverage=None)
    assert weak_retrieval(policy, [p(0.1), p(0.29)], Q)
    assert not weak_retrieval(policy, [p(0.1), p(0.31)], Q)
    assert weak_retrieval(policy, [], Q)  # nothing retrieved at all
    # A store that does not report similarities never triggers it.
    assert not weak_retrieval(policy, [p(None)], Q)
    assert best_similarity([p(None), p(0.2)]) == 0.2 and best_similarity([p(None)]) is None
    assert not weak_retrieval(AnswerPolicy(None, None, None), [], Q)


@pytest.mark.parametrize(("question", "terms"), [
    ("How many days of paid vacation do I get?", {"day", "paid", "vac"}),
    ("What do I do?", set()),
    # One-character words ("1", "몇", "번") say too little to count.
    # "있나요": a one-syllable verb and the question's ending, no content term.
    ("건강검진은 1년에 몇 번 받을 수 있나요?", {"건강", "강검", "검진", "년에", "받을"}),
    ("자기계발 지원금은 얼마인가요?", {"자기", "기계", "계발", "지원", "원금"}),
    ("한국의 수도는 어디인가요?", {"한국", "수도"}),
])
def test_question_terms(question: str, terms: set[str]) -> None:
    assert question_terms(question) == terms


def test_term_coverage_in_english_and_korean() -> None:
    vacation = [p(0.5, "Every employee accrues 25 days of paid vacation.")]
    assert term_coverage("How many days of paid vacation?", vacation) == 1.0
    assert term_coverage("Which dental insurance provider is paid?", vacation) == \
        pytest.approx(1 / 4)
    assert term_coverage("What is it?", vacation) is None
    travel = [p(0.6, "숙박비는 1박에 12만 원까지 지원됩니다. 출장 보고서는 5영업일 안에 제출합니다.")]
    # 출장 보고 고서 제출 found; 출해 해야 not ("언제" is a question word, "하나요" a verb)
    assert term_coverage("출장 보고서는 언제까지 제출해야 하나요?", travel) == pytest.approx(4 / 6)
    assert term_coverage("한국의 수도는 어디인가요?", travel) == 0.0


def test_weak_retrieval_by_term_coverage() -> None:
    policy = AnswerPolicy(min_retrieval_score=None, min_term_coverage=0.5)
    travel = [p(None, "숙박비는 1박에 12만 원까지 지원됩니다.")]
    assert weak_retrieval(policy, travel, "한국의 수도는 어디인가요?")
    assert not weak_retrieval(policy, travel, "숙박비는 1박에 얼마까지 지원되나요?")
    assert not weak_retrieval(policy, travel, "What?")  # no terms: no decision


def test_policies_per_tenant() -> None:
    strict = AnswerPolicy(0.5, 0.6, 0.7)
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
    assert book.default == AnswerPolicy(0.2, None, 0.5, "hybrid")
    assert book.for_tenant("acme") == AnswerPolicy(0.2, 0.5, 0.5, "hybrid")  # the rest: the default's
    assert book.for_tenant("open") == AnswerPolicy(None, None, 0.5, "hybrid")
    monkeypatch.setenv("LLMOPS_INFERENCE_ANSWER_POLICIES",
                       '{"tenants": {"acme": {"min_retrieval_score": 3}}}')
    with pytest.raises(ValidationError, match="min_retrieval_score"):
        Settings().answer_policies.policies()


def test_default_policy() -> None:
    s = Settings()
    assert s.answer_policies.policies().default == AnswerPolicy(0.2, None, 0.5, "hybrid")
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
