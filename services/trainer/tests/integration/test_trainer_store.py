"""The job store on SQLite and Postgres: queue, leases, cancel, history (one body, both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmops_kit.errors import FailedPrecondition, NotFound
from llmops_trainer.adapters.sql_store import SqlJobStore
from llmops_trainer.domain.job import Job, JobSpec, JobState

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SqlJobStore:
    url = (f"sqlite:///{tmp_path}/trainer.db" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    s = SqlJobStore.open(url)
    with s.engine.begin() as conn:  # the Postgres database is shared by the session's tests
        conn.exec_driver_sql("DELETE FROM trainer_job_history")
        conn.exec_driver_sql("DELETE FROM trainer_jobs")
    return s


def job(job_id: str, minutes: int = 0, tenant: str = "acme") -> Job:
    return Job(job_id, tenant, JobState.QUEUED, JobSpec(dataset_id="ds-0123456789abcdef"),
               T0 + timedelta(minutes=minutes), resolved={"base_model_path": "/b"})


def test_one_claim_per_job_and_expired_leases_are_taken_over(store: SqlJobStore) -> None:
    assert store.insert(job("j1"))
    assert not store.insert(job("j1"))  # a replayed request
    first = store.claim("replica-a", T0, 30)
    assert first is not None and (first.job_id, first.state, first.attempts) == \
        ("j1", JobState.RUNNING, 1)
    # Nothing else is queued and the lease holds: replica-b gets nothing.
    assert store.claim("replica-b", T0 + timedelta(seconds=10), 30) is None
    assert store.renew("j1", "replica-a", T0 + timedelta(seconds=20), 30)
    assert not store.renew("j1", "replica-b", T0 + timedelta(seconds=20), 30)
    assert store.claim("replica-b", T0 + timedelta(seconds=45), 30) is None  # renewed to 50
    taken = store.claim("replica-b", T0 + timedelta(seconds=51), 30)
    assert taken is not None and (taken.lease_owner, taken.attempts) == ("replica-b", 2)
    # The old owner lost it: its progress and its final state are refused.
    assert store.record("j1", "replica-a", [("step", {"step": 1})], 10, T0) == []
    assert store.finish("j1", "replica-a", JobState.FAILED, "x", T0) is None
    assert not store.renew("j1", "replica-a", T0 + timedelta(seconds=52), 30)


def test_a_restarted_replica_takes_its_own_running_job_first(store: SqlJobStore) -> None:
    store.insert(job("old", 0))
    store.insert(job("newer", 1))
    assert store.claim("replica-a", T0, 300) is not None  # "old" is now RUNNING on replica-a
    again = store.claim("replica-a", T0 + timedelta(seconds=5), 300)
    assert again is not None and (again.job_id, again.attempts) == ("old", 2)
    other = store.claim("replica-b", T0 + timedelta(seconds=5), 300)
    assert other is not None and other.job_id == "newer"


def test_history_offset_and_final_state(store: SqlJobStore) -> None:
    store.insert(job("j1"))
    store.claim("r", T0, 30)
    recorded = store.record("j1", "r", [("step", {"step": 1, "loss": 2.0}),
                                        ("eval", {"step": 1, "val_loss": 2.5})], 120, T0)
    assert [(p.sequence, p.kind) for p in recorded] == [(2, "step"), (3, "eval")]
    final = store.finish("j1", "r", JobState.SUCCEEDED, "", T0, "acme-ft", 4)
    assert final is not None and final.data == {"state": "SUCCEEDED", "message": "",
                                                "model_name": "acme-ft", "model_version": 4}
    got = store.get("acme", "j1")
    assert got is not None
    assert (got.state, got.progress_offset, got.model_version, got.last_progress) == \
        (JobState.SUCCEEDED, 120, 4, final)
    assert [p.kind for p in store.history("j1", 0)] == ["state", "step", "eval", "state"]
    assert [p.sequence for p in store.history("j1", 2)] == [3, 4]
    assert store.get("globex", "j1") is None  # another tenant's job does not exist for it


def test_cancel_queued_at_once_running_by_request(store: SqlJobStore) -> None:
    store.insert(job("q", 0))
    store.insert(job("r", 1))
    store.claim("replica", T0, 30)  # "q" is older: it runs
    running = store.request_cancel("acme", "q", "acme/key1", T0)
    assert (running.state, running.cancel_requested_by) == (JobState.RUNNING, "acme/key1")
    queued = store.request_cancel("acme", "r", "acme/key2", T0)
    assert (queued.state, queued.error) == (JobState.CANCELLED, "cancelled by acme/key2")
    with pytest.raises(FailedPrecondition):
        store.request_cancel("acme", "r", "acme/key2", T0)
    with pytest.raises(NotFound):
        store.request_cancel("globex", "q", "globex/k", T0)


def test_list_is_newest_first_per_tenant_with_pages(store: SqlJobStore) -> None:
    for i in range(5):
        store.insert(job(f"j{i}", i))
    store.insert(job("other", 9, tenant="globex"))
    page = store.list_jobs("acme", None, 2, None)
    assert [j.job_id for j in page] == ["j4", "j3"]
    rest = store.list_jobs("acme", None, 10, (page[-1].created_at, page[-1].job_id))
    assert [j.job_id for j in rest] == ["j2", "j1", "j0"]
    store.claim("r", T0, 30)
    assert [j.job_id for j in store.list_jobs("acme", JobState.RUNNING, 10, None)] == ["j0"]


def test_tenant_jobs_and_deleting_a_tenants_jobs_with_their_history(store: SqlJobStore) -> None:
    for job_id, minutes, tenant in (("a2", 2, "acme"), ("a1", 1, "acme"), ("g1", 0, "globex")):
        assert store.insert(job(job_id, minutes, tenant))
        store.record(job_id, "", [("state", {"state": "QUEUED"})], None, T0)
    store.claim("replica-a", T0, 30)  # g1 (the oldest) runs
    assert [j.job_id for j in store.tenant_jobs("acme")] == ["a1", "a2"]
    assert store.delete_tenant("acme") == 2
    assert store.tenant_jobs("acme") == [] and store.history("a1", 0) == []
    assert store.get("acme", "a2") is None
    assert [(j.job_id, j.state) for j in store.tenant_jobs("globex")] == \
        [("g1", JobState.RUNNING)]
    assert [p.data["state"] for p in store.history("g1", 0)] == ["QUEUED", "RUNNING"]
    assert store.delete_tenant("acme") == 0
