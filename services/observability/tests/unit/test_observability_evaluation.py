"""EvaluationCompleted -> one `scores` row per question and metric (source "evaluation")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmops.registry.v1 import evaluation_pb2 as ev
from llmops_kit import events, topics
from llmops_observability.api.mapping import MappingOptions, add_event
from llmops_observability.rows import Rows

pytestmark = pytest.mark.unit

WHEN = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_an_evaluation_run_becomes_scores_per_question_and_metric() -> None:
    env = events.make_envelope("model-registry", tenant="acme", event_id="e-1")
    env.occurred_at.FromDatetime(WHEN)
    run = ev.EvaluationRun(id="ev-42", model_name="smollm2", model_version=4, results=[
        ev.EvaluationResult(question_id="a1", answerable=True, holds_fact=True, cited=True,
                            groundedness=0.75, latency_ms=812.0, answer="25 days"),
        ev.EvaluationResult(question_id="x1", answerable=False, refusal="WEAK_RETRIEVAL",
                            latency_ms=40.0),
        ev.EvaluationResult(question_id="a2", answerable=True, error="UNAVAILABLE: down")])
    rows = Rows()
    add_event(rows, topics.EVALUATION_COMPLETED, ev.EvaluationCompleted(envelope=env, run=run),
              None, MappingOptions())
    scores = {(r["request_id"], r["name"]): r["value"] for r in rows.rows("scores")}
    assert scores == {
        ("a1", "holds_fact"): 1.0, ("a1", "cited"): 1.0, ("a1", "groundedness"): 0.75,
        ("a1", "latency_ms"): 812.0, ("a1", "refused"): 0.0, ("a1", "blocked"): 0.0,
        ("a1", "error"): 0.0,
        ("x1", "latency_ms"): 40.0, ("x1", "refused"): 1.0, ("x1", "blocked"): 0.0,
        ("x1", "error"): 0.0,
        ("a2", "holds_fact"): 0.0, ("a2", "cited"): 0.0, ("a2", "refused"): 0.0,
        ("a2", "blocked"): 0.0, ("a2", "error"): 1.0,
    }
    every = rows.rows("scores")
    assert {(r["source"], r["run_id"], r["response_model"], r["tenant"]) for r in every} == {
        ("evaluation", "ev-42", "smollm2@4", "acme")}
    assert len({r["id"] for r in every}) == len(every)  # stable, distinct ids
    # No question or answer text reaches the scores table.
    assert {r["comment"] for r in every} == {""}
    assert len(rows.rows("events")) == 1
