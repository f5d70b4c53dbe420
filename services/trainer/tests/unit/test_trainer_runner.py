"""The job runner with fakes: registration outcomes, a lost lease, a worker that dies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from llmops_kit.errors import InvalidArgument, Unavailable
from llmops_trainer.domain.job import Defaults, Job, JobSpec, JobState, Progress, with_defaults
from llmops_trainer.domain.runner import JobRunner, RunnerConfig
from llmops_trainer.ports import NewModelVersion

pytestmark = pytest.mark.unit


class FakeStore:
    def __init__(self, job: Job) -> None:
        self.job = job
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.finished: tuple[JobState, str, str, int] | None = None
        self.lease_held = True
        self.claimed = False

    def claim(self, owner: str, now: datetime, lease: float) -> Job | None:
        if self.claimed:
            return None
        self.claimed = True
        self.job = replace(self.job, state=JobState.RUNNING, attempts=self.job.attempts + 1,
                           lease_owner=owner)
        return self.job

    def get_any(self, job_id: str) -> Job:
        return self.job

    def set_worker(self, job_id: str, owner: str, pgid: int) -> None:
        self.job = replace(self.job, worker_pgid=pgid)

    def renew(self, job_id: str, owner: str, now: datetime, lease: float) -> bool:
        return self.lease_held

    def record(self, job_id: str, owner: str, items: Sequence[tuple[str, dict[str, Any]]],
               offset: int | None, now: datetime) -> list[Progress]:
        self.records.extend(items)
        return [Progress(i + 1, k, d, now) for i, (k, d) in enumerate(items)]

    def finish(self, job_id: str, owner: str, state: JobState, error: str, now: datetime,
               model_name: str = "", model_version: int = 0) -> Progress:
        self.finished = (state, error, model_name, model_version)
        return Progress(99, "state", {"state": state.value, "message": error}, now)


class ScriptedWorker:
    """Writes the given progress lines when started; exits with `code` (None: runs on)."""

    def __init__(self, lines: list[dict[str, Any]], code: int | None = 0) -> None:
        self.lines = lines
        self.code = code
        self.killed = False
        self.terminated = False
        self.pgid = 4242

    def poll(self) -> int | None:
        return -9 if self.killed else self.code

    def terminate(self) -> None:
        self.terminated = True

    def kill(self) -> None:
        self.killed = True


class FakeLauncher:
    def __init__(self, worker: ScriptedWorker) -> None:
        self.worker = worker
        self.killed_groups: list[int] = []

    def start(self, job_dir: Path, world_size: int, log_path: Path) -> ScriptedWorker:
        with (job_dir / "progress.jsonl").open("a") as f:
            for line in self.worker.lines:
                f.write(json.dumps(line) + "\n")
        return self.worker

    def kill_group(self, pgid: int) -> None:
        self.killed_groups.append(pgid)


class FakeRegistry:
    def __init__(self, *outcomes: Exception | tuple[str, int]) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[NewModelVersion] = []

    async def register(self, version: NewModelVersion) -> tuple[str, int]:
        self.calls.append(version)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class Nothing:
    async def publish(self, job: Job, records: Sequence[Progress]) -> None:
        pass


def make(tmp_path: Path, worker: ScriptedWorker, registry: FakeRegistry,
         **job_fields: Any) -> tuple[JobRunner, FakeStore, FakeLauncher]:
    for name in ("train.jsonl", "validation.jsonl"):
        (tmp_path / name).write_text('{"text": "x"}\n')
    spec = with_defaults(JobSpec(dataset_id="ds-0123456789abcdef", lora=True), Defaults())
    job = Job("job-1", "acme", JobState.QUEUED, spec, datetime.now(UTC), resolved={
        "base_model_path": str(tmp_path / "base"), "train_path": str(tmp_path / "train.jsonl"),
        "validation_path": str(tmp_path / "validation.jsonl"),
        "parent_name": "smollm2-135m-instruct", "parent_version": 1}, **job_fields)
    store = FakeStore(job)
    launcher = FakeLauncher(worker)
    runner = JobRunner(store, launcher, registry, Nothing(),  # type: ignore[arg-type]
                       RunnerConfig(tmp_path / "jobs", "r1", poll_seconds=0.01,
                                    register_backoff_seconds=0.01, code_version="v"))
    return runner, store, launcher


DONE = {"type": "done", "best_step": 2, "best_val_loss": 0.5, "early_stopped": True,
        "output_dir": "output", "output_format": "peft-lora"}
STEP = {"type": "step", "step": 1, "total_steps": 2, "loss": 1.0}


async def test_a_transient_registry_failure_is_retried(tmp_path: Path) -> None:
    registry = FakeRegistry(Unavailable("REGISTRY_UNAVAILABLE", "down"), ("acme-ft", 7))
    runner, store, _ = make(tmp_path, ScriptedWorker([STEP, DONE]), registry)
    assert await runner.run_once()
    assert store.finished == (JobState.SUCCEEDED, "", "acme-ft", 7)
    assert len(registry.calls) == 2
    version = registry.calls[0]
    assert version.artifact_uri == (tmp_path / "jobs" / "job-1" / "output").resolve().as_uri()
    assert json.loads(version.metadata["metrics"])["early_stopped"] is True
    assert version.dataset_uri == "dataset://acme/ds-0123456789abcdef"
    assert store.records == [("step", {"step": 1, "total_steps": 2, "loss": 1.0})]


async def test_a_refused_registration_fails_the_job_at_once(tmp_path: Path) -> None:
    registry = FakeRegistry(InvalidArgument("BAD_FORMAT", "format 'x' is not allowed"))
    runner, store, _ = make(tmp_path, ScriptedWorker([DONE]), registry)
    assert await runner.run_once()
    assert store.finished == (JobState.FAILED, "registering the model failed: BAD_FORMAT: "
                              "format 'x' is not allowed", "", 0)
    assert len(registry.calls) == 1


async def test_a_worker_that_exits_without_a_result_fails_the_job(tmp_path: Path) -> None:
    runner, store, _ = make(tmp_path, ScriptedWorker([STEP], code=137), FakeRegistry())
    assert await runner.run_once()
    assert store.finished is not None and store.finished[0] is JobState.FAILED
    assert store.finished[1].startswith("worker exited with code 137 without a result")


async def test_a_lost_lease_kills_the_worker_and_leaves_the_job(tmp_path: Path) -> None:
    worker = ScriptedWorker([STEP], code=None)
    runner, store, launcher = make(tmp_path, worker, FakeRegistry(), worker_pgid=777)
    store.lease_held = False
    assert await runner.run_once()
    assert worker.killed and store.finished is None
    assert launcher.killed_groups == [777]  # a leftover worker of an earlier run went first


async def test_too_many_attempts_fail_the_job(tmp_path: Path) -> None:
    runner, store, _ = make(tmp_path, ScriptedWorker([DONE]), FakeRegistry(), attempts=5)
    assert await runner.run_once()
    assert store.finished == (JobState.FAILED, "gave up after 5 attempts", "", 0)
    assert not (tmp_path / "jobs" / "job-1").exists()
