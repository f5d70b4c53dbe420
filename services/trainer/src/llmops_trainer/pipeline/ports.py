"""What the continuous-training loop needs from the outside world."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from llmops_trainer.domain.job import Job, JobSpec
from llmops_trainer.pipeline.model import Loop, Step
from llmops_trainer.pipeline.settings import CanaryPolicy, TenantPolicy


class LoopStore(Protocol):
    def add(self, loop: Loop, step: Step) -> bool:
        """Stores a new loop with its first step; False when the loop id exists already."""
        ...

    def get(self, loop_id: str) -> Loop | None: ...

    def active(self, tenant: str | None = None) -> list[Loop]:
        """Loops not ended yet, oldest first."""
        ...

    def latest_started(self, tenant: str) -> Loop | None:
        """The tenant's newest loop that was not skipped."""
        ...

    def save(self, loop: Loop, steps: Sequence[Step], expected_steps: int) -> bool:
        """Stores the loop and its new steps if it still has `expected_steps` steps (another
        replica moved it meanwhile: False, nothing written)."""
        ...

    def unpublished(self, limit: int) -> list[Step]: ...

    def mark_published(self, loop_id: str, sequence: int) -> None: ...

    def steps(self, loop_id: str) -> list[Step]: ...


class JobsPort(Protocol):
    """The trainer's own Jobs use case (domain/jobs.py)."""

    async def submit(self, tenant: str, spec: JobSpec, submitted_by: str = "",
                     job_id: str | None = None) -> Job: ...

    async def get(self, tenant: str, job_id: str) -> Job: ...


@dataclass(frozen=True)
class DatasetRef:
    dataset_id: str
    kind: str
    name: str


class DatasetIndex(Protocol):
    def newest(self, tenant: str, kinds: Sequence[str], names: Sequence[str]
               ) -> DatasetRef | None:
        """The tenant's newest dataset version of one of `kinds` (and `names`, when given)."""
        ...

    def eval_set(self, tenant: str, ref: str) -> str | None:
        """The id of the evaluation set `ref` (an id, or a name: its newest version of kind
        eval); None when there is none."""
        ...


@dataclass(frozen=True)
class EvalRun:
    run_id: str
    totals: dict[str, float]


class Evaluator(Protocol):
    async def evaluate(self, tenant: str, model: str, version: int, eval_dataset: str,
                       policy: TenantPolicy) -> EvalRun:
        """Asks the set through inference with `model@version` pinned and records the run
        in the registry's EvaluationService."""
        ...


@dataclass(frozen=True)
class CanaryInfo:
    state: str  # PROGRESSING | PROMOTED | ROLLED_BACK | ABORTED
    candidate: int
    share: int
    reason: str


class GateRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Rollout(Protocol):
    async def production(self, tenant: str, model: str) -> int | None:
        """The version the tenant's `production` alias points at (None: no alias yet)."""
        ...

    async def start_canary(self, tenant: str, model: str, version: int, canary: CanaryPolicy,
                           reason: str) -> CanaryInfo:
        """RolloutService.StartCanary (the registry applies the gate: GateRefused)."""
        ...

    async def canary(self, tenant: str, model: str) -> CanaryInfo | None: ...


class StepSink(Protocol):
    async def emit(self, step: Step) -> None:
        """Publishes the step (ContinuousTrainingStep) and writes its audit entry."""
        ...
