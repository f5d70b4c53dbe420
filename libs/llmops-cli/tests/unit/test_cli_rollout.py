"""`llmops models canary|rollback` against a fake RolloutService on a real gRPC socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from llmops.registry.v1 import rollout_pb2, rollout_pb2_grpc
from llmops_cli.rollout_cmds import duration
from llmops_cli.testing import fake_service, run

pytestmark = pytest.mark.unit

CANARY = rollout_pb2.Canary(
    name="smollm2", tenant_id="acme", production_version=1, candidate_version=2, share=30,
    step=20, max_share=100, interval_seconds=30, threshold=2, failed_checks=1,
    last_good_version=1, state=rollout_pb2.CANARY_STATE_PROGRESSING,
    reason="failed check 1 of 2 at 30%: error rate 0.200 > production 0.010 + 0.05",
    thresholds=rollout_pb2.CanaryThresholds(
        max_error_rate_increase=0.05, max_latency_ratio=1.5, max_safety_block_increase=0.05,
        max_groundedness_drop=0.1, max_negative_feedback_increase=0.1, min_requests=20))


class FakeRollout(rollout_pb2_grpc.RolloutServiceServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, str]]] = []
        # GetCanary answers these in turn (the last one from then on); empty: CANARY.
        self.states: list[rollout_pb2.Canary] = []

    def _record(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        self.calls.append((method, request, dict(context.invocation_metadata())))
        if request.name == "nope":
            context.set_trailing_metadata((("x-error-reason", "GATE_REFUSED"),))
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "GATE_REFUSED: worse on eval")

    def StartCanary(self, request, context):  # type: ignore[no-untyped-def]
        self._record("StartCanary", request, context)
        out = rollout_pb2.Canary()
        out.CopyFrom(CANARY)
        out.share, out.failed_checks, out.reason = request.share, 0, "started"
        return out

    def GetCanary(self, request, context):  # type: ignore[no-untyped-def]
        self._record("GetCanary", request, context)
        if self.states:
            return self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return CANARY

    def AbortCanary(self, request, context):  # type: ignore[no-untyped-def]
        self._record("AbortCanary", request, context)
        out = rollout_pb2.Canary()
        out.CopyFrom(CANARY)
        out.state, out.share = rollout_pb2.CANARY_STATE_ABORTED, 0
        return out

    def Rollback(self, request, context):  # type: ignore[no-untyped-def]
        self._record("Rollback", request, context)
        out = rollout_pb2.Canary()
        out.CopyFrom(CANARY)
        out.state = rollout_pb2.CANARY_STATE_ROLLED_BACK
        return rollout_pb2.RollbackResponse(from_version=1, to_version=1, canary=out)


@pytest.fixture
def rollout(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRollout]:
    fake = FakeRollout()
    with fake_service(rollout_pb2_grpc.add_RolloutServiceServicer_to_server, fake,
                      "LLMOPS_REGISTRY_ADDR", monkeypatch):
        yield fake


def test_canary_start_sends_the_settings(rollout: FakeRollout,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["models", "canary", "smollm2@2", "--share", "10", "--step", "20",
                "--interval", "30s", "--threshold", "2", "--tenant", "acme"]) == 0
    method, req, md = rollout.calls[0]
    assert method == "StartCanary" and md["x-api-key"] == "k-acme"
    assert (req.name, req.candidate_version, req.share, req.step, req.interval_seconds,
            req.threshold, req.max_share, req.override_gate) == ("smollm2", 2, 10, 20, 30, 2,
                                                                  100, False)
    out = capsys.readouterr().out
    assert out.startswith("started\nsmollm2: canary v2 vs production v1 [acme]: progressing "
                          "at 10%")
    assert run(["models", "canary", "smollm2@2", "--interval", "2m", "--json",
                "--tenant", "acme"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "progressing" and data["interval_seconds"] == 30
    assert rollout.calls[1][1].interval_seconds == 120


def test_canary_status_abort_and_rollback(rollout: FakeRollout,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["models", "canary", "status", "smollm2", "--tenant", "acme"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "smollm2: canary v2 vs production v1 [acme]: progressing at 30%"
    assert lines[1] == ("step 20% every 30s up to 100%; failed checks 1 of 2; rollback goes "
                        "to v1")
    assert lines[-1].startswith("last: failed check 1 of 2 at 30%")
    assert run(["models", "canary", "abort", "smollm2", "--reason", "x", "--tenant",
                "acme", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "aborted"
    assert rollout.calls[-1][1].reason == "x"
    assert run(["models", "rollback", "smollm2", "--tenant", "acme"]) == 0
    assert capsys.readouterr().out.strip() == \
        "smollm2 production: v1 -> v1 (canary of v2 rolled back)"
    assert run(["models", "rollback", "smollm2", "--tenant", "acme", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["from_version"], data["to_version"], data["canary"]["state"]) == \
        (1, 1, "rolled_back")


def test_errors_and_bad_arguments(rollout: FakeRollout,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["models", "canary", "nope@2", "--tenant", "acme"]) == 1
    assert "FAILED_PRECONDITION: GATE_REFUSED" in capsys.readouterr().err
    assert run(["models", "canary", "smollm2", "--tenant", "acme"]) == 2
    assert "expected NAME@VERSION" in capsys.readouterr().err
    assert run(["models", "canary", "smollm2@2", "--share", "0"]) == 2
    assert run(["models", "canary", "status", "--tenant", "acme"]) == 2
    assert len(rollout.calls) == 1  # nothing bad was sent
    assert [duration(v) for v in ("30", "30s", "5m", "1h")] == [30, 30, 300, 3600]


def canary(state: int, share: int, failed: int = 0, reason: str = "") -> rollout_pb2.Canary:
    out = rollout_pb2.Canary()
    out.CopyFrom(CANARY)
    out.state, out.share, out.failed_checks, out.reason = state, share, failed, reason
    return out


PROGRESSING = rollout_pb2.CANARY_STATE_PROGRESSING


def test_canary_wait_follows_the_controller_until_promoted(
        rollout: FakeRollout, capsys: pytest.CaptureFixture[str]) -> None:
    waiting = "waiting for requests: candidate served 1 of 3 needed for a verdict"
    rollout.states = [
        canary(PROGRESSING, 50, reason=waiting), canary(PROGRESSING, 50, reason=waiting),
        canary(PROGRESSING, 100, reason="advanced to 100%: healthy over 3 candidate requests"),
        canary(rollout_pb2.CANARY_STATE_PROMOTED, 100, reason="promoted v2 at 100%: healthy")]
    assert run(["models", "canary", "smollm2@2", "--share", "50", "--step", "50",
                "--override", "demo", "--wait", "--poll", "0.01", "--tenant", "acme"]) == 0
    start = rollout.calls[0][1]
    assert (start.override_gate, start.reason) == (True, "demo")
    assert [c[0] for c in rollout.calls] == ["StartCanary"] + ["GetCanary"] * 4
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "started"
    # One line per change (the repeated "waiting" is printed once), after an HH:MM:SS stamp.
    changes = [line.split(" ", 1)[1] for line in lines if line[:2].isdigit()]
    assert changes == [
        f"progressing at 50% (failed checks 0 of 2): {waiting}",
        "progressing at 100% (failed checks 0 of 2): advanced to 100%: healthy over 3 "
        "candidate requests",
        "promoted (failed checks 0 of 2): promoted v2 at 100%: healthy"]
    assert lines[-1] == "last: promoted v2 at 100%: healthy"


def test_canary_status_wait_exits_1_on_a_rollback_and_3_when_still_progressing(
        rollout: FakeRollout, capsys: pytest.CaptureFixture[str]) -> None:
    rollout.states = [canary(PROGRESSING, 10),
                      canary(rollout_pb2.CANARY_STATE_ROLLED_BACK, 0, 2, "rolled back: p95")]
    assert run(["models", "canary", "status", "smollm2", "--wait", "--poll", "0.01",
                "--json", "--tenant", "acme"]) == 1
    data = json.loads(capsys.readouterr().out)  # --json: only the final canary
    assert (data["state"], data["failed_checks"], data["reason"]) == \
        ("rolled_back", 2, "rolled back: p95")
    rollout.states = [canary(PROGRESSING, 10, reason="waiting")]
    assert run(["models", "canary", "status", "smollm2", "--wait", "--wait-timeout", "1",
                "--poll", "0.2", "--tenant", "acme"]) == 3
    out = capsys.readouterr().out
    assert "still progressing after 1s" in out
    assert out.count("progressing at 10% (failed checks 0 of 2): waiting") == 1
    polls = [c for c in rollout.calls if c[0] == "GetCanary"]
    assert 4 <= len(polls) - 2 <= 7  # about 1 s / 0.2 s, not one and not a busy loop
    rollout.states = [canary(rollout_pb2.CANARY_STATE_ABORTED, 0)]
    assert run(["models", "canary", "status", "smollm2", "--wait", "--tenant", "acme"]) == 1
