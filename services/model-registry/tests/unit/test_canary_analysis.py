"""Canary analysis decisions (pure): minimum samples, each metric's comparison, the promote
path, failed checks up to the threshold and the rollback."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from llmops_registry.domain.canary import (
    Canary,
    CanaryState,
    Check,
    Move,
    Thresholds,
    VersionMetrics,
    analyse,
    decide,
)

pytestmark = pytest.mark.unit

T = Thresholds(max_error_rate_increase=0.05, max_latency_ratio=1.5,
               max_safety_block_increase=0.05, max_groundedness_drop=0.1,
               max_negative_feedback_increase=0.1, min_requests=20)
GOOD = VersionMetrics(requests=100, errors=1, p95_latency_ms=1000.0, safety_blocks=1,
                      groundedness=0.8, negative_feedback=2)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def canary(**kw: object) -> Canary:
    base = Canary(tenant="acme", name="m", production=1, candidate=2, share=10, step=20,
                  max_share=50, interval_seconds=30, threshold=2, thresholds=T,
                  state=CanaryState.PROGRESSING, failed_checks=0, last_good=1, reason="",
                  started_at=NOW, updated_at=NOW, window_start=NOW, next_check_at=NOW, id=7)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_no_verdict_below_the_minimum_request_count() -> None:
    check = analyse(replace(GOOD, requests=2, errors=2), GOOD, T)
    assert check.passed is None
    assert "2 of 20" in check.reason


def test_minimum_reached_gives_a_verdict() -> None:
    assert analyse(replace(GOOD, requests=20, errors=0, safety_blocks=0, negative_feedback=0),
                   GOOD, T).passed is True


@pytest.mark.parametrize(("candidate", "words"), [
    (replace(GOOD, errors=10), "error rate 0.100 > production 0.010"),
    (replace(GOOD, p95_latency_ms=1600.0), "p95 latency 1600 ms > production 1000 ms x 1.5"),
    (replace(GOOD, safety_blocks=8), "safety-block rate 0.080 > production 0.010"),
    (replace(GOOD, groundedness=0.6), "groundedness 0.600 < production 0.800 - 0.1"),
    (replace(GOOD, negative_feedback=15), "negative-feedback rate 0.150 > production 0.020"),
])
def test_each_metric_fails_a_check_beyond_its_margin(candidate: VersionMetrics,
                                                     words: str) -> None:
    check = analyse(candidate, GOOD, T)
    assert check.passed is False
    assert words in check.reason


@pytest.mark.parametrize("candidate", [
    replace(GOOD, errors=6),                 # 0.06 <= 0.01 + 0.05
    replace(GOOD, p95_latency_ms=1500.0),    # exactly 1.5x
    replace(GOOD, groundedness=0.7),         # exactly the allowed drop
    replace(GOOD, groundedness=None),        # not scored: not compared
])
def test_within_margins_passes(candidate: VersionMetrics) -> None:
    check = analyse(candidate, GOOD, T)
    assert check.passed is True, check.reason


def test_latency_is_not_compared_without_production_traffic() -> None:
    assert analyse(replace(GOOD, p95_latency_ms=9999.0), VersionMetrics(), T).passed is True


def test_several_failures_are_all_named() -> None:
    check = analyse(replace(GOOD, errors=50, p95_latency_ms=5000.0), GOOD, T)
    assert check.passed is False
    assert "error rate" in check.reason and "p95 latency" in check.reason


def test_promote_path_raises_share_by_step_capped_then_promotes() -> None:
    c = canary()
    shares = []
    moves = []
    for i in range(3):
        step = decide(c, Check(True, "ok"), NOW + timedelta(seconds=30 * (i + 1)))
        moves.append(step.move)
        c = step.canary
        shares.append(c.share)
    assert moves == [Move.ADVANCE, Move.ADVANCE, Move.PROMOTE]
    assert shares == [30, 50, 100]
    assert c.state is CanaryState.PROMOTED
    assert c.last_good == 1 and c.next_check_at is None
    assert "share 10% -> 30%" in decide(canary(), Check(True, "ok"), NOW).reason


def test_advance_restarts_the_window_and_schedules_the_next_check() -> None:
    at = NOW + timedelta(seconds=31)
    step = decide(canary(), Check(True, "ok"), at)
    assert step.canary.window_start == at
    assert step.canary.next_check_at == at + timedelta(seconds=30)


def test_failed_checks_hold_then_roll_back_at_the_threshold() -> None:
    first = decide(canary(share=30), Check(False, "error rate high"), NOW)
    assert first.move is Move.HOLD
    assert first.canary.share == 30 and first.canary.failed_checks == 1
    assert "failed check 1 of 2 at 30%" in first.reason
    second = decide(first.canary, Check(False, "error rate high"), NOW)
    assert second.move is Move.ROLLBACK
    assert second.canary.state is CanaryState.ROLLED_BACK
    assert second.canary.share == 0 and second.canary.failed_checks == 2
    assert "rolled back to v1 after 2 failed checks" in second.reason


def test_threshold_one_rolls_back_on_the_first_failure() -> None:
    assert decide(canary(threshold=1), Check(False, "x"), NOW).move is Move.ROLLBACK


def test_waiting_changes_nothing_but_the_due_time() -> None:
    c = canary(failed_checks=1, share=30)
    step = decide(c, Check(None, "waiting"), NOW + timedelta(seconds=5))
    assert step.move is Move.WAIT
    assert (step.canary.share, step.canary.failed_checks) == (30, 1)
    assert step.canary.window_start == c.window_start  # the window keeps growing


def test_thresholds_merge_keeps_given_values_and_fills_unset() -> None:
    merged = T.merged(Thresholds(0.0, 2.0, 0.0, 0.0, 0.0, 0))
    assert merged.max_latency_ratio == 2.0
    assert merged.min_requests == 20 and merged.max_error_rate_increase == 0.05
