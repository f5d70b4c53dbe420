"""Continuous-training loops as data: one loop per trigger, its states and its steps.

TRIGGERED -> JOB_SUBMITTED -> JOB_SUCCEEDED -> EVALUATED -> CANARY_STARTED -> PROMOTED |
ROLLED_BACK | ABORTED, with the loop ending early at SKIPPED (cooldown, a loop in flight),
JOB_FAILED, GATE_REFUSED or FAILED (a step that kept failing, no evaluation set...). Every move
is a step: stored with the loop, then published and audited (`ContinuousTrainingStep`).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime


class LoopState(enum.StrEnum):
    TRIGGERED = "TRIGGERED"
    JOB_SUBMITTED = "JOB_SUBMITTED"
    JOB_SUCCEEDED = "JOB_SUCCEEDED"
    EVALUATED = "EVALUATED"
    CANARY_STARTED = "CANARY_STARTED"
    SKIPPED = "SKIPPED"
    JOB_FAILED = "JOB_FAILED"
    GATE_REFUSED = "GATE_REFUSED"
    PROMOTED = "PROMOTED"
    ROLLED_BACK = "ROLLED_BACK"
    ABORTED = "ABORTED"
    FAILED = "FAILED"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset({LoopState.SKIPPED, LoopState.JOB_FAILED, LoopState.GATE_REFUSED,
                   LoopState.PROMOTED, LoopState.ROLLED_BACK, LoopState.ABORTED,
                   LoopState.FAILED})


class Trigger(enum.StrEnum):
    DATASET = "dataset"
    DRIFT = "drift"


# The step each state is reached by (gate_passed is its own step before canary_started).
STEP_OF: dict[LoopState, str] = {
    LoopState.TRIGGERED: "triggered", LoopState.JOB_SUBMITTED: "job_submitted",
    LoopState.JOB_SUCCEEDED: "job_succeeded", LoopState.EVALUATED: "evaluated",
    LoopState.CANARY_STARTED: "canary_started", LoopState.SKIPPED: "skipped",
    LoopState.JOB_FAILED: "job_failed", LoopState.GATE_REFUSED: "gate_refused",
    LoopState.PROMOTED: "canary_promoted", LoopState.ROLLED_BACK: "canary_rolled_back",
    LoopState.ABORTED: "canary_aborted", LoopState.FAILED: "failed",
}
GATE_PASSED = "gate_passed"
STEPS = (*STEP_OF.values(), GATE_PASSED)


def loop_id_for(tenant: str, trigger: Trigger, ref: str) -> str:
    """The same trigger of the same tenant, the same loop (a redelivered event finds it)."""
    digest = hashlib.sha256(f"{tenant}\0{trigger.value}\0{ref}".encode()).hexdigest()[:16]
    return f"ctl-{digest}"


def job_id_for(loop_id: str) -> str:
    """The loop's job id: submitting again after a restart finds the job, never a second."""
    return f"job-ct-{loop_id.removeprefix('ctl-')}"


@dataclass
class Loop:
    loop_id: str
    tenant: str
    trigger: Trigger
    trigger_ref: str
    state: LoopState
    created_at: datetime
    updated_at: datetime
    dataset_id: str = ""
    job_id: str = ""
    model_name: str = ""
    model_version: int = 0
    production_version: int = 0
    eval_dataset: str = ""
    candidate_run_id: str = ""
    production_run_id: str = ""
    reason: str = ""
    # Failures in a row of the current step (reset by every move).
    attempts: int = 0
    # Steps recorded so far (the last step's sequence).
    steps: int = 0


@dataclass(frozen=True)
class Step:
    """One recorded step: the loop as it was right after it."""

    loop: Loop
    step: str
    sequence: int
    at: datetime

    @property
    def final(self) -> bool:
        return self.loop.state.final and self.step != GATE_PASSED
