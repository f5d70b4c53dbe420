"""Groundedness: sentence splitting (English, Korean) and the scoring arithmetic, with a fake
embedder whose vectors are chosen per text."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from llmops_inference.domain.groundedness import best_similarities, groundedness, split_sentences
from llmops_inference.domain.model import Answer, Embeddings, Passage, Verdict
from llmops_inference.domain.quality import QualityConfig, QualityScorer

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "sentences"), [
    ("You get 25 days [1]. Up to 5 days carry over [2][3]! Ask HR?",
     ["You get 25 days.", "Up to 5 days carry over!", "Ask HR?"]),
    # Decimals, versions, abbreviations and initials-like tokens do not end a sentence.
    ("About 2.08 days a month, e.g. in v2.0 of the policy. Dr. Kim approves it.",
     ["About 2.08 days a month, e.g. in v2.0 of the policy.", "Dr. Kim approves it."]),
    # Markers in any form, closing quotes kept with their sentence, an ellipsis ends one.
    ('He said "fine." [1, 2] Then [3-4] it ended\u2026 ok', ['He said "fine."', "Then it ended\u2026",
                                                         "ok"]),
    # Lines and list items are sentences of their own; lines without a letter are dropped.
    ("- Meals: 75 euros a day\n- Hotels via the desk.\n1. Submit receipts.\n\n2.\n---",
     ["Meals: 75 euros a day", "Hotels via the desk.", "Submit receipts."]),
    ("연간 25일의 유급 휴가가 주어집니다 [1]. 재택 근무는 주 2회까지 가능합니다! 괜찮나요?",
     ["연간 25일의 유급 휴가가 주어집니다.", "재택 근무는 주 2회까지 가능합니다!", "괜찮나요?"]),
    # CJK full-width stops end a sentence without a space after them.
    ("첫날은 9시 30분까지 오세요\u3002멘토가 배정됩니다\uff01질문 있나요\uff1f",
     ["첫날은 9시 30분까지 오세요\u3002", "멘토가 배정됩니다\uff01", "질문 있나요\uff1f"]),
    ("", []),
    ("[1]", []),
])
def test_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_best_similarity_is_the_cosine_to_the_closest_passage() -> None:
    # Unnormalised vectors: cosine, not the dot product.
    best = best_similarities([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]], [[5.0, 0.0], [1.0, 1.0]])
    assert best == pytest.approx([1.0, 2 ** -0.5, 1.0])
    assert best_similarities([[1.0, 0.0]], []) == [0.0]


def test_groundedness_is_supported_over_answer_sentences_at_the_threshold() -> None:
    passages = [[1.0, 0.0, 0.0]]
    sentences = [[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    g = groundedness(sentences, passages, threshold=0.6)
    # cosines 1.0, 0.6 (exactly the threshold: supported), 0, 0
    assert (g.sentences, g.supported, g.score) == (4, 2, 0.5)
    assert g.similarities == pytest.approx((1.0, 0.6, 0.0, 0.0))
    assert groundedness(sentences, passages, threshold=0.61).supported == 1
    assert groundedness([], passages, 0.3).score == 0.0


# --- QualityScorer with a fake embedding service --------------------------------------------

# Topic axes: vacation, expenses, penguins.
VECTORS = {
    "25 days of paid vacation a year.": [1.0, 0.0, 0.0],
    "Meals are 75 euros a day.": [0.0, 1.0, 0.0],
    "You get 25 days of vacation.": [0.9, 0.1, 0.0],
    "Meals cost 75 euros.": [0.1, 0.9, 0.0],
    "Penguins live in the south.": [0.0, 0.0, 1.0],
    "How many vacation days?": [0.8, 0.0, 0.6],
}


class FakeEmbedder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.info_calls = 0
        self.fail = fail

    async def embed_texts(self, texts: Sequence[str]) -> Embeddings:
        self.calls.append(list(texts))
        if self.fail:
            raise RuntimeError("embedding down")
        return Embeddings([VECTORS[t] for t in texts], "fake-minilm")

    async def model_name(self) -> str:
        self.info_calls += 1
        return "fake-minilm"


VACATION = Passage(1, "vacation.md", "c1", "Vacation", "25 days of paid vacation a year.", 0.9)
MEALS = Passage(2, "expenses.html", "c2", "Expenses", "Meals are 75 euros a day.", 0.4)
QUESTION = "How many vacation days?"


def answer(text: str, cited: list[Passage], **kw: object) -> Answer:
    base: dict[str, object] = dict(text=text, passages=cited, model=None, prompt=None,
                                   input_safety=Verdict.ALLOW, output_safety=Verdict.ALLOW,
                                   blocked=False, retrieved=[VACATION, MEALS],
                                   searched_text=QUESTION, query_vector=[0.8, 0.0, 0.6])
    base.update(kw)
    return Answer(**base)  # type: ignore[arg-type]


async def test_sentences_are_scored_against_the_cited_passages_in_one_call() -> None:
    embedder = FakeEmbedder()
    scorer = QualityScorer(embedder, QualityConfig(threshold=0.5))
    text = "You get 25 days of vacation [1]. Meals cost 75 euros. Penguins live in the south."
    q = await scorer.assess(answer(text, [VACATION]), QUESTION, text)
    # Only [1] is cited: the meals sentence is not supported by it, nor the penguins one.
    assert (q.answer_sentences, q.supported_sentences) == (3, 1)
    assert q.groundedness == pytest.approx(1 / 3)
    # One call: sentences (markers gone) then every retrieved passage; the question's vector
    # is retrieval's own (the searched text was the redacted question), so it is not sent.
    assert embedder.calls == [["You get 25 days of vacation.", "Meals cost 75 euros.",
                               "Penguins live in the south.", VACATION.text, MEALS.text]]
    assert q.question_embedding == [0.8, 0.0, 0.6] and q.embedding_model == "fake-minilm"
    # Best cosine between the question and a retrieved passage: vacation, 0.8.
    assert q.best_retrieval_score == pytest.approx(0.8)


async def test_without_citations_the_retrieved_passages_support_the_answer() -> None:
    embedder = FakeEmbedder()
    text = "You get 25 days of vacation. Meals cost 75 euros."
    q = await QualityScorer(embedder, QualityConfig(threshold=0.5)).assess(
        answer(text, []), QUESTION, text)
    assert (q.answer_sentences, q.supported_sentences, q.groundedness) == (2, 2, 1.0)


async def test_a_question_redacted_differently_than_searched_is_embedded_in_the_same_call(
) -> None:
    embedder = FakeEmbedder()
    text = "You get 25 days of vacation."
    q = await QualityScorer(embedder, QualityConfig()).assess(
        answer(text, [VACATION], searched_text="How many vacation days, bob?"), QUESTION, text)
    assert embedder.calls == [[text, VACATION.text, MEALS.text, QUESTION]]
    assert q.question_embedding == VECTORS[QUESTION] and q.groundedness == 1.0


async def test_nothing_to_score_reuses_the_vector_and_asks_the_model_name_once() -> None:
    embedder = FakeEmbedder()
    scorer = QualityScorer(embedder, QualityConfig(groundedness=False))
    blocked = answer("I can't share that answer.", [], retrieved=[], error="OUTPUT_BLOCKED")
    q = await scorer.assess(blocked, QUESTION, blocked.text)
    assert embedder.calls == [] and embedder.info_calls == 1
    assert q.groundedness is None and q.answer_sentences == 0
    assert q.question_embedding == [0.8, 0.0, 0.6] and q.best_retrieval_score == 0.0


async def test_no_rag_embeds_the_question_only() -> None:
    embedder = FakeEmbedder()
    plain = answer("Penguins live in the south.", [], retrieved=[], searched_text="",
                   query_vector=[])
    q = await QualityScorer(embedder, QualityConfig()).assess(plain, QUESTION, plain.text)
    assert embedder.calls == [[QUESTION]]
    assert q.groundedness is None and q.question_embedding == VECTORS[QUESTION]


async def test_an_embedding_failure_is_raised_for_the_caller() -> None:
    text = "You get 25 days of vacation."
    with pytest.raises(RuntimeError):
        await QualityScorer(FakeEmbedder(fail=True), QualityConfig()).assess(
            answer(text, [VACATION]), QUESTION, text)
