"""Evaluation runs: judging one answer, a run's totals, and comparing two runs."""

from __future__ import annotations

import pytest

from llmops.registry.v1 import evaluation_pb2
from llmops_kit.evaluation.proto import result_from_pb, result_pb
from llmops_kit.evaluation.questions import EvalQuestion, parse
from llmops_kit.evaluation.runs import QuestionResult, compare, judge, percentile, totals

pytestmark = pytest.mark.unit

VACATION = EvalQuestion("en-a01", "en", "How many vacation days?", "vacation-policy.md",
                        ("25 days", "25"))
DENTAL = EvalQuestion("en-x01", "en", "Who is the dental provider?", None)


def test_judge_needs_the_fact_and_the_document_and_no_refusal() -> None:
    assert judge(VACATION, "You get 25 days [1].", ["vacation-policy.md"], "", False) == \
        (True, True)
    assert judge(VACATION, "You get 1,025 days.", ["other.md"], "", False) == (False, False)
    assert judge(VACATION, "You get 25 DAYS.", [], "", False) == (True, False)
    # A refusal or a blocked answer holds nothing, even if the text happens to.
    assert judge(VACATION, "25 days", ["vacation-policy.md"], "WEAK_RETRIEVAL", False) == \
        (False, False)
    assert judge(VACATION, "25 days", ["vacation-policy.md"], "", True) == (False, False)
    assert judge(DENTAL, "Acme Dental", [], "", False) == (False, False)


def test_parse_reads_dataset_records_and_rejects_bad_ones() -> None:
    qs = parse('{"id": "a", "lang": "en", "question": "q?", "document": "d.md", '
               '"facts": ["5"]}\n\n{"id": "b", "lang": "ko", "question": "q?", "facts": []}\n')
    assert [(q.id, q.answerable, q.facts) for q in qs] == [("a", True, ("5",)), ("b", False, ())]
    with pytest.raises(ValueError, match=r"records\.jsonl:1: an answerable question needs facts"):
        parse('{"id": "a", "lang": "en", "question": "q", "document": "d"}', "records.jsonl")


def r(qid: str, answerable: bool = True, **kw: object) -> QuestionResult:
    return QuestionResult(qid, f"{qid}?", answerable, **kw)  # type: ignore[arg-type]


def test_totals_rate_over_the_questions_they_apply_to() -> None:
    run = [r("a", holds_fact=True, cited=True, groundedness=0.8, latency_ms=100,
             prompt_tokens=200, completion_tokens=20),
           r("b", holds_fact=False, cited=True, groundedness=0.4, latency_ms=300,
             prompt_tokens=100, completion_tokens=10),
           r("c", refusal="WEAK_RETRIEVAL", latency_ms=50),
           r("x", answerable=False, refusal="WEAK_RETRIEVAL", latency_ms=40),
           r("e", error="UNAVAILABLE: down", latency_ms=9999)]
    t = totals(run)
    assert t["questions"] == 5
    assert t["holds_fact"] == pytest.approx(1 / 4) and t["cited"] == pytest.approx(2 / 4)
    assert t["groundedness_mean"] == pytest.approx(0.6)
    assert t["refused_when_covered"] == pytest.approx(1 / 4)
    assert t["refused_when_not_covered"] == 1.0 and t["refusals"] == pytest.approx(2 / 5)
    assert t["errors"] == pytest.approx(1 / 5)
    # Latency and tokens over the answered questions only (a failed call has no latency).
    assert (t["latency_p50_ms"], t["latency_p95_ms"]) == (50, 300)
    assert t["prompt_tokens_mean"] == pytest.approx(75.0)
    assert "groundedness_mean" not in totals([r("a")])
    assert percentile([], 95) is None and percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_compare_shows_deltas_and_the_questions_that_changed() -> None:
    a = [r("q1", holds_fact=True, cited=True), r("q2"), r("q3", refusal="WEAK_RETRIEVAL"),
         r("old")]
    b = [r("q1", holds_fact=True, cited=True), r("q2", holds_fact=True),
         r("q3"), r("new")]
    c = compare(totals(a), totals(b), a, b)
    deltas = {m.metric: m.delta for m in c.metrics}
    assert deltas["holds_fact"] == pytest.approx(0.25)
    assert deltas["refusals"] == pytest.approx(-0.25)
    assert [(q.question_id, q.changes) for q in c.changed] == [
        ("q2", {"holds_fact": (False, True)}), ("q3", {"refusal": ("WEAK_RETRIEVAL", "")})]
    assert (c.only_a, c.only_b) == (["old"], ["new"])


def test_results_round_trip_through_protobuf() -> None:
    full = r("a", answer="25 days", holds_fact=True, cited=True, groundedness=0.0,
             latency_ms=12.5, prompt_tokens=3, completion_tokens=4, safety="redact",
             blocked=True, refusal="UNSUPPORTED_ANSWER", error="")
    assert result_from_pb(result_pb(full)) == full
    bare = r("b", answerable=False)
    msg = result_pb(bare)
    assert not msg.HasField("groundedness")
    assert result_from_pb(evaluation_pb2.EvaluationResult.FromString(
        msg.SerializeToString())) == bare
