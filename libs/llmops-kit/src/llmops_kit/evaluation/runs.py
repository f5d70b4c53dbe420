"""Evaluation runs: what one question got, a run's totals, and two runs side by side.

The runner (`llmops eval run`) records one QuestionResult per question; the registry stores
them, computes a run's totals with `totals()` (what the promotion gate compares) and
`llmops eval compare` shows `compare()`. Rates are over the questions they apply to: holds
fact and cited over the answerable ones, refusals over all, groundedness over the scored ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from llmops_kit.evaluation.questions import EvalQuestion, holds_fact

# Metrics of a run, and whether more is better (the gate and compare read the direction).
METRICS: dict[str, bool] = {
    "holds_fact": True,
    "cited": True,
    "groundedness_mean": True,
    "refused_when_not_covered": True,
    "refused_when_covered": False,
    "refusals": False,
    "blocked": False,
    "errors": False,
    "latency_p50_ms": False,
    "latency_p95_ms": False,
    "prompt_tokens_mean": False,
    "completion_tokens_mean": False,
}


@dataclass(frozen=True)
class QuestionResult:
    """One question of a run, as the answer path answered it."""

    question_id: str
    question: str
    answerable: bool
    answer: str = ""
    holds_fact: bool = False
    cited: bool = False
    # Inference's groundedness score of the answer; None when not scored (refusal, no passages).
    groundedness: float | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # "allow" | "redact" | "block" of the output check ("" when not checked).
    safety: str = ""
    blocked: bool = False
    # The platform's refusal reason (WEAK_RETRIEVAL, UNSUPPORTED_ANSWER), "" for an answer.
    refusal: str = ""
    # Why the call failed ("" when it answered): a failed question counts as wrong, not missing.
    error: str = ""

    @property
    def refused(self) -> bool:
        return bool(self.refusal)


def judge(q: EvalQuestion, answer: str, cited_documents: Iterable[str], refusal: str,
          blocked: bool) -> tuple[bool, bool]:
    """(holds the expected fact, cited the expected document) of one answer; a refusal or a
    blocked answer holds and cites nothing."""
    if refusal or blocked or not q.answerable:
        return False, False
    return holds_fact(answer, q.facts), q.document in set(cited_documents)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def totals(results: Sequence[QuestionResult]) -> dict[str, float]:
    """A run's metrics (see METRICS); a metric with nothing to measure is left out."""
    answerable = [r for r in results if r.answerable]
    uncovered = [r for r in results if not r.answerable]
    answered = [r for r in results if not r.error]
    raw: dict[str, float | None] = {
        "questions": float(len(results)),
        "holds_fact": _rate(sum(r.holds_fact for r in answerable), len(answerable)),
        "cited": _rate(sum(r.cited for r in answerable), len(answerable)),
        "groundedness_mean": _mean([r.groundedness for r in results if r.groundedness is not None]),
        "refused_when_not_covered": _rate(sum(r.refused for r in uncovered), len(uncovered)),
        "refused_when_covered": _rate(sum(r.refused for r in answerable), len(answerable)),
        "refusals": _rate(sum(r.refused for r in results), len(results)),
        "blocked": _rate(sum(r.blocked for r in results), len(results)),
        "errors": _rate(sum(bool(r.error) for r in results), len(results)),
        "latency_p50_ms": percentile([r.latency_ms for r in answered], 50),
        "latency_p95_ms": percentile([r.latency_ms for r in answered], 95),
        "prompt_tokens_mean": _mean([float(r.prompt_tokens) for r in answered]),
        "completion_tokens_mean": _mean([float(r.completion_tokens) for r in answered]),
    }
    return {k: v for k, v in raw.items() if v is not None}


@dataclass(frozen=True)
class MetricDelta:
    metric: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass(frozen=True)
class ChangedQuestion:
    """A question whose holds-fact, cited, refusal or error differs between two runs."""

    question_id: str
    question: str
    changes: dict[str, tuple[object, object]]


@dataclass(frozen=True)
class Comparison:
    metrics: list[MetricDelta]
    changed: list[ChangedQuestion]
    # Questions only one of the runs asked.
    only_a: list[str]
    only_b: list[str]


_COMPARED = ("holds_fact", "cited", "refusal", "blocked", "error")


def compare(a_totals: Mapping[str, float], b_totals: Mapping[str, float],
            a: Sequence[QuestionResult], b: Sequence[QuestionResult]) -> Comparison:
    """Run B against run A: every metric with B - A, and the questions whose result changed."""
    names = ["questions", *METRICS]
    metrics = [MetricDelta(m, a_totals.get(m), b_totals.get(m)) for m in names
               if m in a_totals or m in b_totals]
    by_a = {r.question_id: r for r in a}
    by_b = {r.question_id: r for r in b}
    changed = []
    for qid, ra in by_a.items():
        rb = by_b.get(qid)
        if rb is None:
            continue
        diff = {f: (getattr(ra, f), getattr(rb, f)) for f in _COMPARED
                if getattr(ra, f) != getattr(rb, f)}
        if diff:
            changed.append(ChangedQuestion(qid, ra.question, diff))
    return Comparison(metrics, changed, sorted(set(by_a) - set(by_b)),
                      sorted(set(by_b) - set(by_a)))
