"""The trainer's use cases at the API edge: submit, read, list, cancel and watch jobs."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

from llmops_kit.errors import InvalidArgument, NotFound
from llmops_trainer.domain.job import Defaults, Job, JobSpec, JobState, Progress, with_defaults
from llmops_trainer.domain.validation import check_spec, job_json
from llmops_trainer.ports import (
    BaseModels,
    DatasetCatalog,
    JobStore,
    ProgressPublisher,
    SpecValidator,
)

MAX_PAGE = 500
DEFAULT_PAGE = 50


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:16]}"


def _token(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.job_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _untoken(token: str) -> tuple[datetime, str]:
    try:
        at, job_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(at), str(job_id)
    except Exception:
        raise InvalidArgument("BAD_PAGE_TOKEN", "page_token is not one this service issued") \
            from None


class Jobs:
    def __init__(self, store: JobStore, datasets: DatasetCatalog, base_models: BaseModels,
                 worker_validate: SpecValidator, publisher: ProgressPublisher,
                 defaults: Defaults, watch_poll_seconds: float = 0.5) -> None:
        self.store = store
        self.datasets = datasets
        self.base_models = base_models
        self.worker_validate = worker_validate
        self.publisher = publisher
        self.defaults = defaults
        self.watch_poll_seconds = watch_poll_seconds

    async def validate(self, tenant: str, job_id: str, spec: JobSpec) -> Job:
        """The job as it would be queued; InvalidArgument (with a reason) when it cannot run."""
        spec = with_defaults(spec, self.defaults)
        check_spec(spec)
        dataset = await asyncio.to_thread(self.datasets.get, tenant, spec.dataset_id)
        if dataset is None:
            raise InvalidArgument("DATASET_NOT_FOUND",
                                  f"tenant has no dataset version {spec.dataset_id}")
        base = await self.base_models.resolve(tenant, spec.base_model)
        if base is None:
            raise InvalidArgument("UNKNOWN_BASE_MODEL",
                                  f"base model {spec.base_model!r} is neither shipped nor an "
                                  "hf-format version in the registry")
        problems = self.worker_validate(job_json(job_id, spec, base.path, dataset.train_path,
                                                 dataset.validation_path))
        if problems:
            raise InvalidArgument("INVALID_CONFIG", "; ".join(problems))
        resolved = {"base_model_path": str(base.path), "parent_name": base.parent_name,
                    "parent_version": base.parent_version,
                    "train_path": str(dataset.train_path),
                    "validation_path": str(dataset.validation_path),
                    "dataset_name": str(dataset.manifest.get("name", "")),
                    "dataset_kind": str(dataset.manifest.get("kind", ""))}
        return Job(job_id, tenant, JobState.QUEUED, spec, datetime.now(UTC), resolved=resolved)

    async def submit(self, tenant: str, spec: JobSpec, submitted_by: str = "",
                     job_id: str | None = None) -> Job:
        """Validates and queues; a job id seen before returns that job unchanged."""
        job_id = job_id or new_job_id()
        existing = await asyncio.to_thread(self.store.get, tenant, job_id)
        if existing is not None:
            return existing
        job = replace(await self.validate(tenant, job_id, spec), submitted_by=submitted_by)
        if await asyncio.to_thread(self.store.insert, job):
            queued = await asyncio.to_thread(
                self.store.record, job_id, "", [("state", {"state": "QUEUED"})], None,
                datetime.now(UTC))
            await self.publisher.publish(job, queued)
        return await self.get(tenant, job_id)

    async def get(self, tenant: str, job_id: str) -> Job:
        job = await asyncio.to_thread(self.store.get, tenant, job_id)
        if job is None:
            raise NotFound("JOB_NOT_FOUND", f"no job {job_id[:64]!r} for this tenant")
        return job

    async def list_jobs(self, tenant: str, state: JobState | None, page_size: int,
                   page_token: str) -> tuple[list[Job], str]:
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        before = _untoken(page_token) if page_token else None
        jobs = await asyncio.to_thread(self.store.list_jobs, tenant, state, size + 1, before)
        more = len(jobs) > size
        jobs = jobs[:size]
        return jobs, (_token(jobs[-1]) if more and jobs else "")

    async def cancel(self, tenant: str, job_id: str, actor: str) -> Job:
        await self.get(tenant, job_id)  # NOT_FOUND before anything else
        job = await asyncio.to_thread(self.store.request_cancel, tenant, job_id, actor,
                                      datetime.now(UTC))
        if job.state is JobState.CANCELLED and job.last_progress is not None:
            await self.publisher.publish(job, [job.last_progress])
        return job

    async def watch(self, tenant: str, job_id: str) -> AsyncIterator[tuple[Job, Progress]]:
        """Every history record so far, then new ones as they come, until the job ended."""
        job = await self.get(tenant, job_id)
        after = 0
        while True:
            records = await asyncio.to_thread(self.store.history, job_id, after)
            for record in records:
                after = record.sequence
                yield job, record
            if job.state.final and not records:
                return
            if not records:
                await asyncio.sleep(self.watch_poll_seconds)
            job = await self.get(tenant, job_id)
