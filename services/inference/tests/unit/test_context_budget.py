"""The prompt's context: neighbours merged, best first, within the budget, whole sentences."""

from __future__ import annotations

import pytest

from llmops_inference.domain.context import (
    ContextBudget,
    build_context,
    estimate_tokens,
    join_overlapping,
    leading_sentences,
    merge_neighbours,
)
from llmops_inference.domain.model import Passage

pytestmark = pytest.mark.unit

DOC = ("Every employee accrues 25 days of paid vacation per year. Up to 5 unused days can be "
       "carried over into the next year. Carried-over days expire on March 31. Request vacation "
       "in the HR portal at least two weeks in advance.")


def chunk(doc: str, index: int, text: str, score: float = 0.5,
          similarity: float | None = None) -> Passage:
    return Passage(0, doc, f"{doc}#{index}", doc, text, score, chunk_index=index,
                   similarity=similarity)


def test_estimate_is_above_a_byte_level_tokenizer() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc def") == 2  # 6 letters / 3
    assert estimate_tokens("2026") == 4  # digits one each
    assert estimate_tokens("재택") == 6  # UTF-8 bytes
    assert estimate_tokens("A 1,000 원") == 4 + 3 + 1  # digits, bytes, ceil(2 others / 3)


def test_neighbouring_chunks_share_their_overlap_once() -> None:
    first, second = DOC[:120], DOC[80:]  # ingestion's windows overlap
    assert join_overlapping(first, second) == DOC
    assert join_overlapping("no overlap here.", "Another text entirely.") == \
        "no overlap here. Another text entirely."


def test_merge_keeps_the_better_rank_and_both_chunk_ids() -> None:
    a0, a1 = chunk("a.md", 0, DOC[:120], 0.4, 0.2), chunk("a.md", 1, DOC[80:], 0.9, 0.6)
    b = chunk("b.md", 1, "Expenses are paid monthly.", 0.7)
    far = chunk("a.md", 5, "Sick leave is separate.", 0.3)
    merged = merge_neighbours([a1, b, a0, far, a1])
    assert [p.document_id for p in merged] == ["a.md", "b.md", "a.md"]
    top = merged[0]
    assert top.text == DOC and top.chunk_id == "a.md#1" and top.score == 0.9
    assert top.chunk_ids == ("a.md#0", "a.md#1") and top.similarity == 0.6
    assert merged[1].chunk_ids == () and merged[1].all_chunk_ids == ("b.md#1",)
    assert merged[2].chunk_id == "a.md#5"  # not adjacent: a passage of its own


def test_leading_sentences_never_cut_one() -> None:
    two = "Every employee accrues 25 days of paid vacation per year. Up to 5 unused days"
    budget = estimate_tokens("Every employee accrues 25 days of paid vacation per year.")
    assert leading_sentences(DOC, budget) == "Every employee accrues 25 days of paid vacation " \
                                             "per year."
    assert leading_sentences(two, budget + 3) == "Every employee accrues 25 days of paid " \
                                                 "vacation per year."
    assert leading_sentences(DOC, 3) == ""
    assert leading_sentences("# Heading\nBody text", estimate_tokens("# Heading")) == "# Heading"


def test_budget_fills_best_first_and_cuts_at_sentence_ends() -> None:
    best = chunk("a.md", 0, DOC, 0.9)
    second = chunk("b.md", 0, "Meals are 75 euros a day. Alcohol is never reimbursed unless a "
                              "director approved the client dinner beforehand. " * 3, 0.8)
    small = chunk("c.md", 0, "Badges: 15 euros.", 0.1)
    room = estimate_tokens(DOC) + estimate_tokens("Meals are 75 euros a day.") + \
        estimate_tokens(small.text)
    got = build_context([best, second, small], ContextBudget(room))
    assert [p.marker for p in got] == [1, 2, 3]
    assert got[0].text == DOC
    assert got[1].text == "Meals are 75 euros a day."  # its first sentence only
    assert got[2].text == "Badges: 15 euros."  # a shorter later one still fits
    assert sum(estimate_tokens(p.text) for p in got) <= room


def test_a_passage_without_a_sentence_that_fits_is_left_out() -> None:
    best = chunk("a.md", 0, "Short one.", 0.9)
    long = chunk("b.md", 0, "A" * 300 + ".", 0.8)
    got = build_context([best, long], ContextBudget(estimate_tokens("Short one.") + 5))
    assert [p.document_id for p in got] == ["a.md"]


def test_the_best_passage_keeps_its_first_sentence_whatever_the_budget() -> None:
    got = build_context([chunk("a.md", 0, DOC)], ContextBudget(5))
    assert [p.text for p in got] == ["Every employee accrues 25 days of paid vacation per year."]


def test_no_budget_keeps_everything_merged() -> None:
    ps = [chunk("a.md", 0, DOC[:120]), chunk("a.md", 1, DOC[80:]), chunk("b.md", 0, "x. " * 999)]
    got = build_context(ps, ContextBudget(0))
    assert [p.text for p in got] == [DOC, "x. " * 999]
    with pytest.raises(ValueError):
        ContextBudget(-1)
