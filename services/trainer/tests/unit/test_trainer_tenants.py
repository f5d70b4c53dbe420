"""Tenant deletion in the trainer with fakes: running jobs are cancelled and waited for, the
folders go before the rows, a job that does not stop fails the erasure (to be retried)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmops_kit.errors import Unavailable
from llmops_trainer.domain.job import Defaults, Job, JobSpec, JobState, Progress
from llmops_trainer.domain.jobs import Jobs
from llmops_trainer.domain.tenants import ACTOR, EraseConfig, TenantTraining, held

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(job_id: str, tenant: str, state: JobState, lease: float = 0) -> Job:
    return Job(job_id, tenant, state, JobSpec("ds-00112233aabbccdd"), NOW,
               lease_expires_at=NOW + timedelta(seconds=lease) if lease else None)


class FakeStore:
    """A running job stops `stops_after` reads after its cancel (None: never)."""

    def __init__(self, jobs: list[Job], stops_after: int | None = 1) -> None:
        self.jobs = {j.job_id: j for j in jobs}
        self.stops_after = stops_after
        self.cancels: list[tuple[str, str]] = []
        self.reads = 0
        self.deleted: list[str] = []

    def tenant_jobs(self, tenant: str) -> list[Job]:
        self.reads += 1
        for j in list(self.jobs.values()):
            if (j.cancel_requested_by and j.state is JobState.RUNNING
                    and self.stops_after is not None and self.reads > self.stops_after):
                self.jobs[j.job_id] = replace(j, state=JobState.CANCELLED)
        return [j for j in self.jobs.values() if j.tenant == tenant]

    def get(self, tenant: str, job_id: str) -> Job | None:
        j = self.jobs.get(job_id)
        return j if j is not None and j.tenant == tenant else None

    def request_cancel(self, tenant: str, job_id: str, actor: str, now: datetime) -> Job:
        self.cancels.append((job_id, actor))
        j = self.jobs[job_id]
        if j.state is JobState.QUEUED:
            record = Progress(9, "state", {"state": "CANCELLED"}, now)
            j = replace(j, state=JobState.CANCELLED, last_progress=record)
        self.jobs[job_id] = replace(j, cancel_requested_by=actor)
        return self.jobs[job_id]

    def delete_tenant(self, tenant: str) -> int:
        gone = [k for k, j in self.jobs.items() if j.tenant == tenant]
        for k in gone:
            del self.jobs[k]
        self.deleted.append(tenant)
        return len(gone)


class Published:
    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    async def publish(self, job: Job, records: list[Progress]) -> None:
        self.records += [(job.job_id, r.data["state"]) for r in records]


def eraser_on(store: FakeStore, datasets: FakeDatasets | None, config: EraseConfig,
              published: Published | None = None) -> TenantTraining:
    jobs = Jobs(store, None, None, None, published or Published(), Defaults())  # type: ignore[arg-type]
    return TenantTraining(jobs, datasets, config, clock=lambda: NOW)


class FakeDatasets:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def delete_tenant(self, tenant: str) -> int:
        self.calls.append(tenant)
        return 2 if len(self.calls) == 1 else 0


def names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def folders(root: Path, *job_ids: str) -> None:
    for job_id in job_ids:
        (root / job_id / "checkpoints" / "step-2").mkdir(parents=True)
        (root / job_id / "output").mkdir()


async def test_cancels_waits_and_removes_jobs_folders_and_datasets(tmp_path: Path) -> None:
    store = FakeStore([job("job-run", "acme", JobState.RUNNING, lease=30),
                       job("job-queued", "acme", JobState.QUEUED),
                       job("job-done", "acme", JobState.SUCCEEDED),
                       job("job-other", "globex", JobState.RUNNING, lease=30)], stops_after=2)
    folders(tmp_path, "job-run", "job-queued", "job-done", "job-other")
    datasets = FakeDatasets()
    published = Published()
    eraser = eraser_on(store, datasets, EraseConfig(tmp_path, 5, 0.01), published)

    assert await eraser.delete_tenant("acme") == 3 + 2
    assert sorted(store.cancels) == [("job-queued", ACTOR), ("job-run", ACTOR)]
    assert published.records == [("job-queued", "CANCELLED")]  # the runner ends the other
    assert store.reads >= 3  # it waited for the running job to stop
    assert names(tmp_path) == ["job-other"]
    assert [j.job_id for j in store.jobs.values()] == ["job-other"]
    assert store.jobs["job-other"].cancel_requested_by == ""
    assert datasets.calls == ["acme"]

    # Redelivered: nothing left, nothing fails.
    assert await eraser.delete_tenant("acme") == 0
    assert datasets.calls == ["acme", "acme"]


async def test_a_job_that_does_not_stop_fails_the_erasure_and_keeps_everything(
        tmp_path: Path) -> None:
    store = FakeStore([job("job-run", "acme", JobState.RUNNING, lease=30)], stops_after=None)
    folders(tmp_path, "job-run")
    datasets = FakeDatasets()
    eraser = eraser_on(store, datasets, EraseConfig(tmp_path, 0.05, 0.01))
    with pytest.raises(Unavailable) as caught:
        await eraser.delete_tenant("acme")
    assert caught.value.reason == "JOBS_STILL_RUNNING"
    assert (tmp_path / "job-run" / "output").is_dir()
    assert (store.deleted, datasets.calls) == ([], [])


async def test_a_running_job_whose_lease_expired_is_not_waited_for(tmp_path: Path) -> None:
    # Its replica died: nobody will stop it, and nobody holds it.
    stale = job("job-stale", "acme", JobState.RUNNING, lease=-5)
    assert not held(stale, NOW) and held(replace(stale, lease_expires_at=NOW + timedelta(1)), NOW)
    store = FakeStore([stale], stops_after=None)
    folders(tmp_path, "job-stale")
    eraser = eraser_on(store, None, EraseConfig(tmp_path, 5, 0.01))
    assert await eraser.delete_tenant("acme") == 1
    assert names(tmp_path) == []


class FakeLoops:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.calls: list[tuple[str, int]] = []  # (tenant, cancels seen when it was called)

    def delete_tenant(self, tenant: str) -> int:
        self.calls.append((tenant, len(self.store.cancels)))
        return 1


async def test_continuous_training_loops_go_first_so_none_submits_again(tmp_path: Path) -> None:
    store = FakeStore([job("job-queued", "acme", JobState.QUEUED)])
    folders(tmp_path, "job-queued")
    loops = FakeLoops(store)
    jobs = Jobs(store, None, None, None, Published(), Defaults())  # type: ignore[arg-type]
    eraser = TenantTraining(jobs, None, EraseConfig(tmp_path, 5, 0.01), clock=lambda: NOW,
                            loops=loops)
    assert await eraser.delete_tenant("acme") == 1 + 1
    assert loops.calls == [("acme", 0)]  # before the job was cancelled
    assert store.cancels == [("job-queued", ACTOR)] and names(tmp_path) == []
