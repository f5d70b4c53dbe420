"""A deleted tenant's training data: its jobs (a running one cancelled first), their folders
(data, checkpoints, output) and its dataset versions.

Order matters for at-least-once delivery: folders go before the job rows, so an erasure that
fails half-way and is redelivered still finds the jobs whose folders are left. A job whose
worker is still running when `wait_seconds` run out makes the erasure fail (Unavailable), and
the event is retried: deleting the folder under a live worker would race its writes.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from llmops_kit.errors import FailedPrecondition, NotFound, Unavailable
from llmops_trainer.domain.job import Job, JobState
from llmops_trainer.domain.jobs import Jobs

log = logging.getLogger(__name__)

ACTOR = "tenant-deletion"


class DatasetEraser(Protocol):
    async def delete_tenant(self, tenant: str) -> int:
        """Removes the tenant's dataset versions (catalogue rows and files); how many."""
        ...


class LoopEraser(Protocol):
    def delete_tenant(self, tenant: str) -> int:
        """Removes the tenant's continuous-training loops and their steps; how many loops."""
        ...


@dataclass(frozen=True)
class EraseConfig:
    jobs_root: Path
    # How long running jobs may take to stop after their cancel: the runner's cancel grace
    # plus a lease (a runner that died lets go of its job when its lease expires).
    wait_seconds: float = 70.0
    poll_seconds: float = 0.5


def _utcnow() -> datetime:
    return datetime.now(UTC)


def held(job: Job, now: datetime) -> bool:
    """Whether a replica still runs `job` (RUNNING with a lease that has not expired)."""
    return (job.state is JobState.RUNNING and job.lease_expires_at is not None
            and job.lease_expires_at > now)


class TenantTraining:
    """The trainer's TenantEraser (llmops_kit.tenants): `delete_tenant` is idempotent."""

    def __init__(self, jobs: Jobs, datasets: DatasetEraser | None, config: EraseConfig,
                 clock: Callable[[], datetime] = _utcnow, loops: LoopEraser | None = None
                 ) -> None:
        self.loops = loops  # continuous training: removed first, so no loop submits again
        self.jobs = jobs  # cancels as CancelJob does (and publishes the QUEUED ones' end)
        self.store = jobs.store
        self.datasets = datasets
        self.config = config
        self.clock = clock

    async def delete_tenant(self, tenant: str) -> int:
        loops = await asyncio.to_thread(self.loops.delete_tenant, tenant) if self.loops else 0
        jobs = await asyncio.to_thread(self.store.tenant_jobs, tenant)
        await self._cancel(tenant, jobs)
        jobs = await self._wait_stopped(tenant)
        for job in jobs:
            await asyncio.to_thread(self._remove_folder, job.job_id)
        removed = await asyncio.to_thread(self.store.delete_tenant, tenant)
        datasets = await self.datasets.delete_tenant(tenant) if self.datasets else 0
        log.info("training data of a deleted tenant removed",
                 extra={"jobs": removed, "datasets": datasets, "loops": loops})
        return removed + datasets + loops

    async def _cancel(self, tenant: str, jobs: list[Job]) -> None:
        for job in jobs:
            if job.state.final or job.cancel_requested_by:
                continue
            try:  # QUEUED: cancelled at once; RUNNING: its replica stops the worker
                await self.jobs.cancel(tenant, job.job_id, ACTOR)
            except (FailedPrecondition, NotFound):  # it ended (or went) meanwhile
                continue

    async def _wait_stopped(self, tenant: str) -> list[Job]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.wait_seconds
        while True:
            jobs = await asyncio.to_thread(self.store.tenant_jobs, tenant)
            running = [j.job_id for j in jobs if held(j, self.clock())]
            if not running:
                return jobs
            if loop.time() > deadline:
                raise Unavailable("JOBS_STILL_RUNNING",
                                  f"{len(running)} job(s) of the tenant did not stop within "
                                  f"{self.config.wait_seconds:.0f}s of their cancel")
            await asyncio.sleep(self.config.poll_seconds)

    def _remove_folder(self, job_id: str) -> None:
        folder = self.config.jobs_root / job_id
        if folder.parent != self.config.jobs_root:  # never: job ids are checked on submit
            log.warning("job id %r is not a folder name; its folder is left", job_id[:64])
            return
        shutil.rmtree(folder, ignore_errors=True)
