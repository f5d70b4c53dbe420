"""The evaluation set stays consistent with the corpus, and its scoring counts what it says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_set import (
    CORPUS,
    EvalQuestion,
    Outcome,
    by_language,
    holds_fact,
    load,
    normalise,
    plain_text,
    score,
)

pytestmark = pytest.mark.unit


def test_the_set_has_the_questions_the_issue_asks_for() -> None:
    qs = load()
    answerable = [q for q in qs if q.answerable]
    assert len(answerable) >= 40
    assert sum(1 for q in answerable if q.lang == "ko") >= 10
    assert sum(1 for q in qs if not q.answerable) >= 8
    # Several documents, both languages among the unanswerable ones.
    assert len({q.document for q in answerable}) >= 10
    assert {q.lang for q in qs if not q.answerable} == {"en", "ko"}


def test_every_fact_is_in_its_document() -> None:
    for q in load():
        if not q.answerable:
            continue
        assert q.document is not None
        path = CORPUS / q.document
        assert path.is_file(), f"{q.id}: {q.document} is not in samples/corpus"
        text = plain_text(path.read_text(encoding="utf-8"))
        assert holds_fact(text, q.facts), f"{q.id}: none of {q.facts} is in {q.document}"


def test_korean_questions_are_korean() -> None:
    for q in load():
        has_hangul = any("\uac00" <= ch <= "\ud7a3" for ch in q.question)
        assert has_hangul == (q.lang == "ko"), q.id


@pytest.mark.parametrize(("answer", "facts", "expected"), [
    ("You get 25 days.", ["25 days"], True),
    ("You get 25\n  DAYS of paid leave", ["25 days"], True),
    ("Up to 15 days", ["5"], False),
    ("Up to 5 days", ["5"], True),
    ("It is 1,000,000 won", ["1000000"], True),
    ("연간 100만 원의 지원금", ["100만 원"], True),
    ("경조 휴가는 5일의 휴가입니다", ["5일"], True),
    ("경조 휴가는 15일입니다", ["5일"], False),
    ("SMS codes are not accepted", ["no"], False),
    ("No, they are not.", ["no"], True),
    ("anything", [], False),
])
def test_facts_match_whole_words_after_normalising(answer: str, facts: list[str],
                                                    expected: bool) -> None:
    assert holds_fact(answer, facts) is expected


def test_normalise_folds_width_case_and_separators() -> None:
    assert normalise("  \uff21BC\t1,234,567 and 2.08 ") == "abc 1234567 and 2.08"
    assert normalise("3,5") == "3,5"  # not a thousands separator


def test_load_rejects_a_question_without_facts(tmp_path: Path) -> None:
    bad = tmp_path / "q.jsonl"
    bad.write_text(json.dumps({"id": "en-a01", "lang": "en", "question": "q?",
                               "document": "a.md", "facts": []}) + "\n")
    with pytest.raises(ValueError, match="needs facts"):
        load(bad)
    bad.write_text(json.dumps({"id": "x", "lang": "fr", "question": "q?", "document": None}))
    with pytest.raises(ValueError, match="lang"):
        load(bad)


def _q(i: str, lang: str, doc: str | None, facts: tuple[str, ...] = ()) -> EvalQuestion:
    return EvalQuestion(i, lang, f"question {i}?", doc, facts)


def test_scores_count_each_metric() -> None:
    a1, a2, a3 = (_q("a1", "en", "d1", ("25",)), _q("a2", "en", "d2", ("paris",)),
                  _q("a3", "ko", "d3", ("5일",)))
    x1, x2 = _q("x1", "en", None), _q("x2", "ko", None)
    outcomes = [
        Outcome(a1, ["d1", "d2"], cited=["d1"], answer="25 days", generated=True),
        Outcome(a2, ["d1", "d9", "d2"], cited=["d1"], answer="Paris", generated=True),
        Outcome(a3, ["d1"] * 5 + ["d3"], answer="문서에 없습니다", refused=True, generated=True),
        Outcome(x1, ["d1"], answer="I don't know", refused=True, generated=True),
        Outcome(x2, ["d2"], answer="5일", generated=True),
    ]
    s = score(outcomes)
    assert (s.questions, s.answerable, s.unanswerable) == (5, 3, 2)
    assert s.recall_at_5 == pytest.approx(2 / 3)  # a3's document is 6th
    assert s.mrr == pytest.approx((1 + 1 / 3 + 1 / 6) / 3)
    assert s.misses == ["a3"]
    assert s.cited_right_document == pytest.approx(1 / 3)
    assert s.holds_fact == pytest.approx(2 / 3)
    assert s.refused_when_covered == pytest.approx(1 / 3)
    assert s.refused_when_not_covered == pytest.approx(1 / 2)
    per = by_language(outcomes)
    assert per["ko"].refused_when_not_covered == 0.0 and per["en"].refused_when_not_covered == 1.0
    assert per["en"].recall_at_5 == 1.0 and per["all"].answerable == 3


def test_retrieval_only_outcomes_leave_answer_metrics_unset() -> None:
    s = score([Outcome(_q("a1", "en", "d1", ("x",)), ["d1"]), Outcome(_q("x1", "en", None), [])])
    assert s.recall_at_5 == 1.0 and s.mrr == 1.0
    assert s.holds_fact is None and s.cited_right_document is None
    assert s.refused_when_not_covered is None and s.refused_when_covered is None


def test_the_set_splits_into_a_tuning_and_a_held_out_half() -> None:
    from eval_set import half

    qs = load()
    assert half(next(q for q in qs if q.id == "en-a01")) == "tune"
    assert half(next(q for q in qs if q.id == "en-a02")) == "held-out"
    for lang in ("en", "ko"):
        answerable = [q for q in qs if q.lang == lang and q.answerable]
        tune = [q for q in answerable if half(q) == "tune"]
        assert abs(2 * len(tune) - len(answerable)) <= 1  # halves of equal size


def test_scores_per_half_cover_each_question_once() -> None:
    q1 = EvalQuestion("en-a01", "en", "q?", "a.md", ("25",))
    q2 = EvalQuestion("en-a02", "en", "q?", "a.md", ("5",))
    outcomes = [Outcome(q1, ["a.md"], answer="25 days", generated=True),
                Outcome(q2, ["a.md"], answer="none", generated=True)]
    scores = by_language(outcomes, halves=True)
    assert scores["en tune"].holds_fact == 1.0 and scores["en held-out"].holds_fact == 0.0
    assert scores["en"].holds_fact == 0.5 and "ko tune" not in scores


def test_the_held_out_set_is_separate_and_consistent_with_the_corpus() -> None:
    from eval_set import HELD_OUT

    held = load(HELD_OUT)
    answerable = [q for q in held if q.answerable]
    assert len(held) >= 20
    assert sum(1 for q in answerable if q.lang == "ko") >= 6
    assert sum(1 for q in held if not q.answerable) >= 3
    assert {q.lang for q in held if not q.answerable} == {"en", "ko"}
    # Its own ids (never a tuning-half question) and none shared with the tuned set.
    assert all(q.id.split("-")[1][:2] in ("ha", "hx") for q in held)
    assert not {q.id for q in held} & {q.id for q in load()}
    assert not {q.question for q in held} & {q.question for q in load()}
    for q in held:
        has_hangul = any("\uac00" <= ch <= "\ud7a3" for ch in q.question)
        assert has_hangul == (q.lang == "ko"), q.id
        if q.document is not None:
            text = plain_text((CORPUS / q.document).read_text(encoding="utf-8"))
            assert holds_fact(text, q.facts), f"{q.id}: none of {q.facts} is in {q.document}"
