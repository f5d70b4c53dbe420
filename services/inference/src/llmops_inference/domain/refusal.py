""""The documents do not cover this": when the platform answers that instead of generating.

Two checks, each set per tenant (an `AnswerPolicy`; None turns a check off):

- weak retrieval, before generation: the best cosine between the question and a retrieved
  chunk (SearchHit.similarity) is under `min_retrieval_score`, or nothing was retrieved.
  The fused hybrid score cannot serve: it is relative to its result set, so the best hit of
  any question scores high. Passages whose similarity the store did not report (an older
  vector-store) never trigger it.
- unsupported answer, after generation (Generate only: a stream has shown its text already):
  the share of the answer's sentences supported by the passages (groundedness.py, at the
  quality threshold) is under `min_groundedness`.

The answer is then a fixed message in the question's language (Korean for a question written
mostly in Hangul, else English; `MESSAGES` holds the translations), without citations, and the
answer carries the reason (GenerateResponse.refusal, InferenceCompleted.refusal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmops_inference.domain.groundedness import groundedness, split_sentences
from llmops_inference.domain.model import Answer, GuardedPassage, Passage, Verdict
from llmops_inference.ports import Embedder

WEAK_RETRIEVAL = "WEAK_RETRIEVAL"
UNSUPPORTED_ANSWER = "UNSUPPORTED_ANSWER"

MESSAGES: Mapping[str, str] = {
    "en": "The documents I can search do not cover this question, so I cannot answer it "
          "from them.",
    "ko": "검색할 수 있는 문서에는 이 질문에 대한 내용이 없어 답변드릴 수 없습니다.",
}


def language(text: str) -> str:
    """"ko" when most of the letters are Hangul, else "en"."""
    letters = [ch for ch in text if ch.isalpha()]
    hangul = sum(1 for ch in letters if "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff"
                 or "\u3130" <= ch <= "\u318f")
    return "ko" if letters and 2 * hangul >= len(letters) else "en"


def message(question: str) -> str:
    return MESSAGES.get(language(question), MESSAGES["en"])


def _check(name: str, value: float | None) -> None:
    if value is not None and (math.isnan(value) or not -1.0 <= value <= 1.0):
        raise ValueError(f"{name} must be within -1..1 or None, got {value}")


@dataclass(frozen=True)
class AnswerPolicy:
    # Refuse before generating when the best retrieved chunk's cosine to the question is
    # below this (None: never). Measured with bench/answer_quality.py (service README).
    min_retrieval_score: float | None = 0.3
    # Refuse a generated answer whose supported-sentence share is below this (None: never).
    min_groundedness: float | None = None

    def __post_init__(self) -> None:
        _check("min_retrieval_score", self.min_retrieval_score)
        _check("min_groundedness", self.min_groundedness)


@dataclass(frozen=True)
class AnswerPolicies:
    """The default policy and the tenants that override it."""

    default: AnswerPolicy = field(default_factory=AnswerPolicy)
    tenants: Mapping[str, AnswerPolicy] = field(default_factory=dict)

    def for_tenant(self, tenant: str) -> AnswerPolicy:
        return self.tenants.get(tenant, self.default)


def best_similarity(passages: Sequence[Passage]) -> float | None:
    known = [p.similarity for p in passages if p.similarity is not None]
    return max(known) if known else None


def not_covered(question: str, reason: str, retrieved: Sequence[Passage],
                guarded: Sequence[GuardedPassage], input_safety: Verdict, searched: str,
                vector: Sequence[float]) -> Answer:
    """The answer refused before generation: no model, no prompt, no output check."""
    return Answer(message(question), [], None, None, input_safety, Verdict.ALLOW, blocked=False,
                  retrieved=list(retrieved), guarded=list(guarded), searched_text=searched,
                  query_vector=list(vector), checked=("input",), refusal=reason,
                  retrieval_score=best_similarity(retrieved))


def weak_retrieval(policy: AnswerPolicy, passages: Sequence[Passage]) -> bool:
    if policy.min_retrieval_score is None:
        return False
    if not passages:
        return True
    best = best_similarity(passages)
    return best is not None and best < policy.min_retrieval_score


class GroundingCheck:
    """Scores an answer against its passages with one embedding call (the unsupported check)."""

    def __init__(self, embedder: Embedder, threshold: float, max_sentences: int = 64,
                 max_passage_chars: int = 2_000) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.max_sentences = max_sentences
        self.max_passage_chars = max_passage_chars

    async def score(self, answer: str, passages: Sequence[Passage]) -> float | None:
        """Supported share of the answer's sentences; None when there is nothing to score."""
        sentences = split_sentences(answer)[:self.max_sentences]
        texts = [p.text[:self.max_passage_chars] for p in passages if p.text.strip()]
        if not sentences or not texts:
            return None
        vectors = (await self.embedder.embed_texts(sentences + texts)).vectors
        n = len(sentences)
        return groundedness(vectors[:n], vectors[n:], self.threshold).score

    async def unsupported(self, policy: AnswerPolicy, answer: str,
                          passages: Sequence[Passage]) -> bool:
        if policy.min_groundedness is None:
            return False
        score = await self.score(answer, passages)
        return score is not None and score < policy.min_groundedness
