"""Stand-ins for continuous training's ports (the unit tests' fakes; nothing here runs in the
service)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from llmops_kit.errors import InvalidArgument, NotFound, Unavailable
from llmops_trainer.domain.job import Job, JobSpec, JobState
from llmops_trainer.pipeline.loop import Pipeline
from llmops_trainer.pipeline.model import Loop, Step
from llmops_trainer.pipeline.ports import (
    CanaryInfo,
    DatasetRef,
    EvalRun,
    GateRefused,
    LoopStore,
)
from llmops_trainer.pipeline.settings import CanaryPolicy, ContinuousSettings, TenantPolicy

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class MemoryLoopStore:
    def __init__(self) -> None:
        self.loops: dict[str, Loop] = {}
        self.rows: list[tuple[Step, bool]] = []

    def add(self, loop: Loop, step: Step) -> bool:
        if loop.loop_id in self.loops:
            return False
        self.loops[loop.loop_id] = replace(loop)
        self.rows.append((step, False))
        return True

    def get(self, loop_id: str) -> Loop | None:
        found = self.loops.get(loop_id)
        return replace(found) if found else None

    def active(self, tenant: str | None = None) -> list[Loop]:
        return [replace(lp) for lp in sorted(self.loops.values(), key=lambda x: x.created_at)
                if not lp.state.final and (tenant is None or lp.tenant == tenant)]

    def latest_started(self, tenant: str) -> Loop | None:
        started = [lp for lp in self.loops.values()
                   if lp.tenant == tenant and lp.state.value != "SKIPPED"]
        return replace(max(started, key=lambda x: x.created_at)) if started else None

    def save(self, loop: Loop, steps: Sequence[Step], expected_steps: int) -> bool:
        if self.loops[loop.loop_id].steps != expected_steps:
            return False
        self.loops[loop.loop_id] = replace(loop)
        self.rows.extend((s, False) for s in steps)
        return True

    def unpublished(self, limit: int) -> list[Step]:
        return [s for s, done in self.rows if not done][:limit]

    def mark_published(self, loop_id: str, sequence: int) -> None:
        self.rows = [(s, done or (s.loop.loop_id == loop_id and s.sequence == sequence))
                     for s, done in self.rows]

    def steps(self, loop_id: str) -> list[Step]:
        return [s for s, _ in self.rows if s.loop.loop_id == loop_id]


class FakeJobs:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.submitted: list[tuple[str, JobSpec, str]] = []
        self.refuse: str = ""

    async def submit(self, tenant: str, spec: JobSpec, submitted_by: str = "",
                     job_id: str | None = None) -> Job:
        if self.refuse:
            raise InvalidArgument(self.refuse, "refused")
        assert job_id
        if job_id not in self.jobs:
            self.submitted.append((tenant, spec, submitted_by))
            self.jobs[job_id] = Job(job_id, tenant, JobState.QUEUED, spec, T0,
                                    submitted_by=submitted_by)
        return self.jobs[job_id]

    async def get(self, tenant: str, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.tenant != tenant:
            raise NotFound("JOB_NOT_FOUND", job_id)
        return job

    def finish(self, job_id: str, state: JobState, version: int = 0, error: str = "") -> None:
        job = self.jobs[job_id]
        job.state, job.error = state, error
        if version:
            job.model_name, job.model_version = job.spec.output_model_name, version


class FakeIndex:
    def __init__(self) -> None:
        self.trainable: DatasetRef | None = DatasetRef("ds-" + "b" * 16, "instruction", "qa")
        self.evals = {"policies-eval": "ds-" + "e" * 16}

    def newest(self, tenant: str, kinds: Sequence[str], names: Sequence[str]
               ) -> DatasetRef | None:
        return self.trainable

    def eval_set(self, tenant: str, ref: str) -> str | None:
        return self.evals.get(ref)


class FakeEvaluator:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, str]] = []
        self.holds = {1: 0.5}
        self.fail_times = 0

    async def evaluate(self, tenant: str, model: str, version: int, eval_dataset: str,
                       policy: TenantPolicy) -> EvalRun:
        if self.fail_times:
            self.fail_times -= 1
            raise Unavailable("INFERENCE_UNAVAILABLE", "inference: UNAVAILABLE")
        self.calls.append((tenant, model, version, eval_dataset))
        return EvalRun(f"ev-{version:016d}", {"holds_fact": self.holds.get(version, 0.75)})


@dataclass
class FakeRollout:
    prod: int | None = 1
    refuse: str = ""
    started: list[tuple[str, str, int, CanaryPolicy]] = field(default_factory=list)
    current: CanaryInfo | None = None

    async def production(self, tenant: str, model: str) -> int | None:
        return self.prod

    async def start_canary(self, tenant: str, model: str, version: int, canary: CanaryPolicy,
                           reason: str) -> CanaryInfo:
        if self.refuse:
            raise GateRefused(self.refuse)
        self.started.append((tenant, model, version, canary))
        self.current = CanaryInfo("PROGRESSING", version, canary.share,
                                  f"canary of v{version} started; gate: gate passed")
        return self.current

    async def canary(self, tenant: str, model: str) -> CanaryInfo | None:
        return self.current


class FakeSink:
    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.fail = False

    async def emit(self, step: Step) -> None:
        if self.fail:
            raise ConnectionError("bus down")
        self.steps.append(step)

    def names(self, loop_id: str | None = None) -> list[str]:
        return [s.step for s in self.steps if loop_id is None or s.loop.loop_id == loop_id]


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Rig:
    pipeline: Pipeline
    store: LoopStore
    jobs: FakeJobs
    index: FakeIndex
    evaluator: FakeEvaluator
    rollout: FakeRollout
    sink: FakeSink
    clock: Clock


def policy(**kw: object) -> TenantPolicy:
    base: dict[str, object] = {"enabled": True, "eval_dataset": "policies-eval",
                               "model_name": "smol", "cooldown_seconds": 600,
                               "job": {"lora": True, "max_steps": 3, "max_seq_len": 64}}
    base.update(kw)
    return TenantPolicy.model_validate(base)


def rig(store: LoopStore | None = None, **policy_kw: object) -> Rig:
    settings = ContinuousSettings(tenants={"acme": policy(**policy_kw)}, max_attempts=3)
    parts = (store or MemoryLoopStore(), FakeJobs(), FakeIndex(), FakeEvaluator(),
             FakeRollout(), FakeSink(), Clock())
    store_, jobs, index, evaluator, rollout, sink, clock = parts
    return Rig(Pipeline(settings, store_, jobs, index, evaluator, rollout, sink, clock),
               store_, jobs, index, evaluator, rollout, sink, clock)
