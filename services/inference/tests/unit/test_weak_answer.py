"""The weak-answer check: a question near a document's topic whose passages hold no sentence
close to it is "not covered" (domain/refusal.py `weak_answer`, `Extract.similarity`)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from llmops_inference.domain.extractive import Extractor
from llmops_inference.domain.model import Embeddings, Passage
from llmops_inference.domain.refusal import AnswerPolicy, weak_answer
from llmops_inference.settings import Settings

pytestmark = pytest.mark.unit


class FixedVectors:
    """A stand-in embedder with a vector per text (unknown texts: [0, 0, 1])."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    async def embed_texts(self, texts: Sequence[str]) -> Embeddings:
        return Embeddings([self.vectors.get(t, [0.0, 0.0, 1.0]) for t in texts], "fixed")

    async def model_name(self) -> str:
        return "fixed"


QUESTION = "What is the guest Wi-Fi password?"
RULE = "Passwords must be at least 14 characters long."
TICKET = "The company pays half of a public transport ticket."


async def test_the_extract_carries_the_best_sentence_cosine_not_the_chosen_ones() -> None:
    # The password sentence wins on shared words; the ticket sentence is the closer vector.
    embedder = FixedVectors({QUESTION: [1.0, 0.0, 0.0], RULE: [0.3, 0.0, 0.954],
                             TICKET: [0.35, 0.937, 0.0]})
    text = f"{RULE} {TICKET}"
    found = await Extractor(embedder).extract(
        QUESTION, [Passage(1, "d.md", "d.md#0", "D", text, 1.0)])
    assert found is not None
    assert found.text == RULE
    assert found.similarity == pytest.approx(0.35, abs=1e-3)  # the ticket sentence


@pytest.mark.parametrize(("threshold", "similarity", "weak"), [
    (0.38, 0.37, True),
    (0.38, 0.38, False),
    (0.38, 0.9, False),
    (None, 0.01, False),   # the check off
    (0.38, None, False),   # nothing measured: no decision
])
def test_weak_answer_by_the_policy(threshold: float | None, similarity: float | None,
                                   weak: bool) -> None:
    assert weak_answer(AnswerPolicy(min_sentence_similarity=threshold), similarity) is weak


def test_the_default_and_a_tenant_override_from_settings(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setenv("LLMOPS_INFERENCE_ANSWER_POLICIES",
                       '{"tenants": {"acme": {"min_sentence_similarity": null}}}')
    policies = Settings().answer_policies.policies()
    assert policies.default.min_sentence_similarity == pytest.approx(0.38)
    assert policies.for_tenant("acme").min_sentence_similarity is None
    assert policies.for_tenant("other").min_sentence_similarity == pytest.approx(0.38)


def test_an_out_of_range_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="min_sentence_similarity"):
        AnswerPolicy(min_sentence_similarity=1.5)
