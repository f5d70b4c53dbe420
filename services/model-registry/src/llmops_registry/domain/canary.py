"""Canary rollouts: the state of one tenant's canary and the analysis that moves it (pure).

Like Flagger and Argo Rollouts: at every interval the candidate's metrics are compared with
production's over the same window. No verdict before the candidate served `min_requests` in
the window; a passing check raises the share by `step` (a passing check at `max_share`
promotes); failed checks add up and `threshold` of them roll back at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

CANARY_ALIAS = "canary"
# How the alias-history reason of a rollback without a canary starts (the next rollback skips it).
ROLLBACK_REASON = "rollback"
# A candidate exactly at a margin passes (rates and means are floats).
EPS = 1e-9


class CanaryState(enum.Enum):
    PROGRESSING = "progressing"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


@dataclass(frozen=True)
class Thresholds:
    """How much worse than production the candidate may be in one window."""

    max_error_rate_increase: float = 0.05
    max_latency_ratio: float = 1.5
    max_safety_block_increase: float = 0.05
    max_groundedness_drop: float = 0.1
    max_negative_feedback_increase: float = 0.1
    min_requests: int = 20

    def merged(self, given: Thresholds | None) -> Thresholds:
        """`given`'s fields where set (non-zero), else these."""
        if given is None:
            return self
        return Thresholds(
            given.max_error_rate_increase or self.max_error_rate_increase,
            given.max_latency_ratio or self.max_latency_ratio,
            given.max_safety_block_increase or self.max_safety_block_increase,
            given.max_groundedness_drop or self.max_groundedness_drop,
            given.max_negative_feedback_increase or self.max_negative_feedback_increase,
            given.min_requests or self.min_requests)


@dataclass(frozen=True)
class CanarySpec:
    """What StartCanary asks for (validated)."""

    candidate: int
    share: int = 10
    step: int = 20
    max_share: int = 100
    interval_seconds: int = 60
    threshold: int = 2
    thresholds: Thresholds = Thresholds()


@dataclass(frozen=True)
class Canary:
    tenant: str
    name: str
    production: int
    candidate: int
    share: int
    step: int
    max_share: int
    interval_seconds: int
    threshold: int
    thresholds: Thresholds
    state: CanaryState
    failed_checks: int
    last_good: int
    reason: str
    started_at: datetime
    updated_at: datetime
    # Start of the window the next check analyses, and when it is due.
    window_start: datetime
    next_check_at: datetime | None
    id: int = 0

    @property
    def active(self) -> bool:
        return self.state is CanaryState.PROGRESSING


@dataclass(frozen=True)
class VersionMetrics:
    """One version's answers for one tenant in one window (from observability)."""

    requests: int = 0
    errors: int = 0
    p95_latency_ms: float = 0.0
    safety_blocks: int = 0
    # Mean groundedness of the scored answers; None when none was scored.
    groundedness: float | None = None
    negative_feedback: int = 0

    def rate(self, count: int) -> float:
        return count / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Check:
    """The verdict of one window: passed None means not enough requests for one."""

    passed: bool | None
    reason: str


def analyse(candidate: VersionMetrics, production: VersionMetrics, t: Thresholds) -> Check:
    if candidate.requests < t.min_requests:
        return Check(None, f"waiting for requests: candidate served {candidate.requests} of "
                           f"{t.min_requests} needed for a verdict")
    failures = []
    c_err, p_err = candidate.rate(candidate.errors), production.rate(production.errors)
    if c_err > p_err + t.max_error_rate_increase + EPS:
        failures.append(f"error rate {c_err:.3f} > production {p_err:.3f} + "
                        f"{t.max_error_rate_increase:g}")
    # Latency is only compared with a production that served requests in the window.
    if production.requests and production.p95_latency_ms > 0 and \
            candidate.p95_latency_ms > production.p95_latency_ms * t.max_latency_ratio + EPS:
        failures.append(f"p95 latency {candidate.p95_latency_ms:.0f} ms > production "
                        f"{production.p95_latency_ms:.0f} ms x {t.max_latency_ratio:g}")
    c_blk, p_blk = candidate.rate(candidate.safety_blocks), production.rate(production.safety_blocks)
    if c_blk > p_blk + t.max_safety_block_increase + EPS:
        failures.append(f"safety-block rate {c_blk:.3f} > production {p_blk:.3f} + "
                        f"{t.max_safety_block_increase:g}")
    if candidate.groundedness is not None and production.groundedness is not None and \
            candidate.groundedness < production.groundedness - t.max_groundedness_drop - EPS:
        failures.append(f"groundedness {candidate.groundedness:.3f} < production "
                        f"{production.groundedness:.3f} - {t.max_groundedness_drop:g}")
    c_neg = candidate.rate(candidate.negative_feedback)
    p_neg = production.rate(production.negative_feedback)
    if c_neg > p_neg + t.max_negative_feedback_increase + EPS:
        failures.append(f"negative-feedback rate {c_neg:.3f} > production {p_neg:.3f} + "
                        f"{t.max_negative_feedback_increase:g}")
    if failures:
        return Check(False, "; ".join(failures))
    return Check(True, f"healthy over {candidate.requests} candidate and {production.requests} "
                       f"production requests (error rate {c_err:.3f} vs {p_err:.3f})")


class Move(enum.Enum):
    WAIT = "wait"            # no verdict: nothing changes but the window goes on
    HOLD = "hold"            # a failed check under the threshold: share unchanged
    ADVANCE = "advance"      # share raised by step
    PROMOTE = "promote"      # production alias moves to the candidate
    ROLLBACK = "rollback"    # all traffic back on the last good version


@dataclass(frozen=True)
class Step:
    move: Move
    canary: Canary  # the canary after the step
    reason: str


def decide(c: Canary, check: Check, now: datetime) -> Step:
    """The step a check's verdict makes; the window restarts after every verdict."""
    due = now + timedelta(seconds=c.interval_seconds)
    if check.passed is None:
        # The window keeps growing until it holds enough requests.
        return Step(Move.WAIT, replace(c, reason=check.reason, updated_at=now,
                                       next_check_at=due), check.reason)
    if check.passed:
        if c.share >= c.max_share:
            why = f"promoted v{c.candidate} at {c.share}%: {check.reason}"
            return Step(Move.PROMOTE, replace(
                c, state=CanaryState.PROMOTED, share=100, reason=why, updated_at=now,
                last_good=c.production, next_check_at=None, window_start=now), why)
        share = min(c.share + c.step, c.max_share)
        why = f"share {c.share}% -> {share}%: {check.reason}"
        return Step(Move.ADVANCE, replace(c, share=share, reason=why, updated_at=now,
                                          window_start=now, next_check_at=due), why)
    failed = c.failed_checks + 1
    if failed >= c.threshold:
        why = (f"rolled back to v{c.last_good} after {failed} failed checks "
               f"(threshold {c.threshold}): {check.reason}")
        return Step(Move.ROLLBACK, replace(
            c, state=CanaryState.ROLLED_BACK, share=0, failed_checks=failed, reason=why,
            updated_at=now, window_start=now, next_check_at=None), why)
    why = f"failed check {failed} of {c.threshold} at {c.share}%: {check.reason}"
    return Step(Move.HOLD, replace(c, failed_checks=failed, reason=why, updated_at=now,
                                   window_start=now, next_check_at=due), why)
