"""What the trainer's domain needs from the outside world (adapters/ implements them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from llmops_trainer.domain.job import Job, JobState, Progress


class JobStore(Protocol):
    """Jobs, their history and the leases that keep one job on one replica (adapters/sql_store)."""

    def insert(self, job: Job) -> bool:
        """Adds a QUEUED job; False when its id exists already (a replayed request)."""
        ...

    def get(self, tenant: str, job_id: str) -> Job | None: ...

    def get_any(self, job_id: str) -> Job | None:
        """A job whatever its tenant (the runner's own reads)."""
        ...

    def list_jobs(self, tenant: str, state: JobState | None, limit: int,
             before: tuple[datetime, str] | None) -> list[Job]:
        """Newest first; `before` = (created_at, job_id) of the last one of the previous page."""
        ...

    def claim(self, owner: str, now: datetime, lease_seconds: float) -> Job | None:
        """Takes the next job (this owner's own RUNNING ones first, then QUEUED ones, then
        RUNNING ones whose lease expired) and sets its lease; None when there is none."""
        ...

    def renew(self, job_id: str, owner: str, now: datetime, lease_seconds: float) -> bool:
        """Extends the lease; False when `owner` no longer holds it."""
        ...

    def set_worker(self, job_id: str, owner: str, pgid: int) -> None: ...

    def request_cancel(self, tenant: str, job_id: str, actor: str, now: datetime) -> Job:
        """QUEUED -> CANCELLED at once; RUNNING: marks it for its replica to stop."""
        ...

    def record(self, job_id: str, owner: str, items: Sequence[tuple[str, dict[str, Any]]],
               progress_offset: int | None, now: datetime) -> list[Progress]:
        """Appends history records (kind, data) and moves the offset, in one transaction."""
        ...

    def finish(self, job_id: str, owner: str, state: JobState, error: str, now: datetime,
               model_name: str = "", model_version: int = 0) -> Progress | None:
        """Final state (and a `state` record); None when `owner` lost the job meanwhile."""
        ...

    def history(self, job_id: str, after: int) -> list[Progress]: ...

    def tenant_jobs(self, tenant: str) -> list[Job]:
        """Every job of `tenant`, whatever its state (tenant deletion)."""
        ...

    def delete_tenant(self, tenant: str) -> int:
        """Removes every job of `tenant` with its history; how many jobs there were."""
        ...


@dataclass(frozen=True)
class DatasetFiles:
    """A dataset version as the trainer uses it (interface 1 of issue 9)."""

    dataset_id: str
    train_path: Path
    validation_path: Path
    manifest: dict[str, Any]


class DatasetCatalog(Protocol):
    def get(self, tenant: str, dataset_id: str) -> DatasetFiles | None: ...


@dataclass(frozen=True)
class BaseModel:
    """A base model the worker can start from."""

    name: str  # as the registry names it (`name` or `name@version`)
    path: Path  # an HF folder
    parent_name: str
    parent_version: int  # 0: not a registry version (a shipped base)


class BaseModels(Protocol):
    async def resolve(self, tenant: str, ref: str) -> BaseModel | None: ...


class SpecValidator(Protocol):
    def __call__(self, spec: dict[str, Any]) -> list[str]:
        """Reasons the worker would refuse `spec` (job.json); empty = valid."""
        ...


@dataclass(frozen=True)
class NewModelVersion:
    tenant: str
    name: str
    artifact_uri: str
    base_model: str
    format: str
    metadata: dict[str, str]
    parent_name: str
    parent_version: int
    job_id: str
    dataset_uri: str


class ModelRegistry(Protocol):
    async def register(self, version: NewModelVersion) -> tuple[str, int]:
        """Registers the version for its tenant; returns (name, version)."""
        ...


class ProgressPublisher(Protocol):
    async def publish(self, job: Job, records: Sequence[Progress]) -> None: ...


class RunningWorker(Protocol):
    @property
    def pgid(self) -> int: ...

    def poll(self) -> int | None:
        """The exit code once it ended, else None."""
        ...

    def terminate(self) -> None:
        """SIGTERM to the whole process group (the worker's cancel)."""
        ...

    def kill(self) -> None: ...


class WorkerLauncher(Protocol):
    def start(self, job_dir: Path, world_size: int, log_path: Path) -> RunningWorker: ...

    def kill_group(self, pgid: int) -> None:
        """SIGKILL to a group a previous run of the service left behind (if it still exists)."""
        ...
