"""JobStore on the kit's relational store (SQLite by default, Postgres by URL).

Claiming is one read-then-write transaction (`writer`: BEGIN IMMEDIATE on SQLite, FOR UPDATE
on Postgres), so two replicas never take the same job; the lease is renewed while the worker
runs, and a job whose lease ran out (its replica died) can be claimed again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, RowMapping

from llmops_kit.db import create_schema, insert_ignore, make_engine, writer
from llmops_kit.errors import NotFound
from llmops_trainer.domain.job import Job, JobSpec, JobState, Progress, check_move

metadata = MetaData()
jobs = Table(
    "trainer_jobs", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("tenant_id", String(128), nullable=False, index=True),
    Column("state", String(16), nullable=False, index=True),
    Column("spec_json", Text, nullable=False),
    Column("resolved_json", Text, nullable=False, default="{}"),
    Column("submitted_by", String(64), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("error", Text, nullable=False, default=""),
    Column("last_sequence", BigInteger, nullable=False, default=0),
    Column("model_name", String(128), nullable=False, default=""),
    Column("model_version", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(200), nullable=False, default=""),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("cancel_requested_by", String(200), nullable=False, default=""),
    Column("progress_offset", BigInteger, nullable=False, default=0),
    Column("worker_pgid", Integer, nullable=False, default=0),
)
history = Table(
    "trainer_job_history", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("data_json", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything here is UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _progress(row: RowMapping) -> Progress:
    at = _utc(row["at"])
    assert at is not None
    return Progress(int(row["sequence"]), row["kind"], json.loads(row["data_json"]), at)


class SqlJobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> SqlJobStore:
        engine = make_engine(url)
        create_schema(metadata, engine)
        return cls(engine)

    # -- reads ----------------------------------------------------------------------------
    def _job(self, conn: Connection, row: RowMapping) -> Job:
        last = conn.execute(select(history).where(
            history.c.job_id == row["job_id"], history.c.sequence == row["last_sequence"])
        ).mappings().first()
        created = _utc(row["created_at"])
        assert created is not None
        return Job(
            job_id=row["job_id"], tenant=row["tenant_id"], state=JobState(row["state"]),
            spec=JobSpec.from_dict(json.loads(row["spec_json"])), created_at=created,
            submitted_by=row["submitted_by"], started_at=_utc(row["started_at"]),
            finished_at=_utc(row["finished_at"]), error=row["error"],
            last_progress=_progress(last) if last else None, model_name=row["model_name"],
            model_version=row["model_version"], attempts=row["attempts"],
            lease_owner=row["lease_owner"], lease_expires_at=_utc(row["lease_expires_at"]),
            cancel_requested_by=row["cancel_requested_by"],
            progress_offset=row["progress_offset"], worker_pgid=row["worker_pgid"],
            resolved=json.loads(row["resolved_json"] or "{}"))

    def _one(self, conn: Connection, job_id: str, lock: bool = False) -> RowMapping | None:
        query = select(jobs).where(jobs.c.job_id == job_id)
        if lock:
            query = query.with_for_update()
        return conn.execute(query).mappings().first()

    def get(self, tenant: str, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = self._one(conn, job_id)
            return self._job(conn, row) if row and row["tenant_id"] == tenant else None

    def get_any(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = self._one(conn, job_id)
            return self._job(conn, row) if row else None

    def list_jobs(self, tenant: str, state: JobState | None, limit: int,
             before: tuple[datetime, str] | None) -> list[Job]:
        query = select(jobs).where(jobs.c.tenant_id == tenant)
        if state is not None:
            query = query.where(jobs.c.state == state.value)
        if before is not None:
            at, job_id = before
            query = query.where(or_(jobs.c.created_at < at,
                                    and_(jobs.c.created_at == at, jobs.c.job_id < job_id)))
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [self._job(conn, row) for row in conn.execute(query).mappings().all()]

    def tenant_jobs(self, tenant: str) -> list[Job]:
        """Every job of `tenant`, oldest first (tenant deletion)."""
        query = select(jobs).where(jobs.c.tenant_id == tenant).order_by(jobs.c.created_at,
                                                                         jobs.c.job_id)
        with self.engine.connect() as conn:
            return [self._job(conn, row) for row in conn.execute(query).mappings().all()]

    def history(self, job_id: str, after: int) -> list[Progress]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(history).where(
                history.c.job_id == job_id, history.c.sequence > after)
                .order_by(history.c.sequence)).mappings().all()
        return [_progress(r) for r in rows]

    # -- writes ---------------------------------------------------------------------------
    def insert(self, job: Job) -> bool:
        with writer(self.engine).begin() as conn:
            result = conn.execute(insert_ignore(self.engine, jobs, {
                "job_id": job.job_id, "tenant_id": job.tenant, "state": job.state.value,
                "spec_json": json.dumps(job.spec.as_dict(), sort_keys=True),
                "resolved_json": json.dumps(job.resolved, sort_keys=True),
                "submitted_by": job.submitted_by, "created_at": job.created_at, "error": "",
                "last_sequence": 0, "model_name": "", "model_version": 0, "attempts": 0,
                "lease_owner": "", "cancel_requested_by": "", "progress_offset": 0,
                "worker_pgid": 0}).returning(jobs.c.job_id))
            return result.first() is not None

    def delete_tenant(self, tenant: str) -> int:
        """Removes every job of `tenant` and its history; how many jobs there were."""
        ids = select(jobs.c.job_id).where(jobs.c.tenant_id == tenant)
        with writer(self.engine).begin() as conn:
            conn.execute(history.delete().where(history.c.job_id.in_(ids)))
            result = conn.execute(jobs.delete().where(jobs.c.tenant_id == tenant))
            return int(result.rowcount or 0)

    def _append(self, conn: Connection, row: RowMapping, items: Sequence[tuple[str, dict[str, Any]]],
                now: datetime) -> list[Progress]:
        seq = int(row["last_sequence"])
        out = []
        for kind, data in items:
            seq += 1
            conn.execute(history.insert().values(job_id=row["job_id"], sequence=seq, kind=kind,
                                                 data_json=json.dumps(data), at=now))
            out.append(Progress(seq, kind, data, now))
        conn.execute(update(jobs).where(jobs.c.job_id == row["job_id"]).values(last_sequence=seq))
        return out

    def claim(self, owner: str, now: datetime, lease_seconds: float) -> Job | None:
        expires = now + timedelta(seconds=lease_seconds)
        with writer(self.engine).begin() as conn:
            candidates = [
                select(jobs).where(jobs.c.state == JobState.RUNNING.value,
                                   jobs.c.lease_owner == owner),
                select(jobs).where(jobs.c.state == JobState.QUEUED.value),
                select(jobs).where(jobs.c.state == JobState.RUNNING.value,
                                   jobs.c.lease_expires_at < now),
            ]
            row = None
            for query in candidates:
                row = conn.execute(query.order_by(jobs.c.created_at).limit(1)
                                   .with_for_update(skip_locked=True)).mappings().first()
                if row is not None:
                    break
            if row is None:
                return None
            check_move(row["job_id"], JobState(row["state"]), JobState.RUNNING)
            conn.execute(update(jobs).where(jobs.c.job_id == row["job_id"]).values(
                state=JobState.RUNNING.value, lease_owner=owner, lease_expires_at=expires,
                attempts=row["attempts"] + 1, started_at=row["started_at"] or now))
            fresh = self._one(conn, row["job_id"])
            assert fresh is not None
            data = {"state": "RUNNING", "attempt": row["attempts"] + 1}
            self._append(conn, fresh, [("state", data)], now)
            fresh = self._one(conn, row["job_id"])
            assert fresh is not None
            return self._job(conn, fresh)

    def renew(self, job_id: str, owner: str, now: datetime, lease_seconds: float) -> bool:
        with writer(self.engine).begin() as conn:
            result = conn.execute(update(jobs).where(
                jobs.c.job_id == job_id, jobs.c.lease_owner == owner,
                jobs.c.state == JobState.RUNNING.value,
            ).values(lease_expires_at=now + timedelta(seconds=lease_seconds)))
            return bool(result.rowcount)

    def release(self, job_id: str, owner: str, now: datetime) -> None:
        """Lets any replica claim the job at once (this one is shutting down)."""
        with writer(self.engine).begin() as conn:
            conn.execute(update(jobs).where(jobs.c.job_id == job_id, jobs.c.lease_owner == owner)
                         .values(lease_expires_at=now, lease_owner=""))

    def set_worker(self, job_id: str, owner: str, pgid: int) -> None:
        with writer(self.engine).begin() as conn:
            conn.execute(update(jobs).where(jobs.c.job_id == job_id, jobs.c.lease_owner == owner)
                         .values(worker_pgid=pgid))

    def request_cancel(self, tenant: str, job_id: str, actor: str, now: datetime) -> Job:
        with writer(self.engine).begin() as conn:
            row = self._one(conn, job_id, lock=True)
            if row is None or row["tenant_id"] != tenant:
                raise NotFound("JOB_NOT_FOUND", f"no job {job_id[:64]!r} for this tenant")
            state = JobState(row["state"])
            check_move(job_id, state, JobState.CANCELLED)
            if state is JobState.QUEUED:
                conn.execute(update(jobs).where(jobs.c.job_id == job_id).values(
                    state=JobState.CANCELLED.value, finished_at=now,
                    error=f"cancelled by {actor}", cancel_requested_by=actor))
                fresh = self._one(conn, job_id)
                assert fresh is not None
                self._append(conn, fresh, [("state", {"state": "CANCELLED",
                                                      "message": f"cancelled by {actor}"})], now)
            elif not row["cancel_requested_by"]:
                conn.execute(update(jobs).where(jobs.c.job_id == job_id)
                             .values(cancel_requested_by=actor))
            fresh = self._one(conn, job_id)
            assert fresh is not None
            return self._job(conn, fresh)

    def record(self, job_id: str, owner: str, items: Sequence[tuple[str, dict[str, Any]]],
               progress_offset: int | None, now: datetime) -> list[Progress]:
        with writer(self.engine).begin() as conn:
            row = self._one(conn, job_id, lock=True)
            if row is None or (owner and row["lease_owner"] != owner):
                return []
            out = self._append(conn, row, items, now)
            if progress_offset is not None:
                conn.execute(update(jobs).where(jobs.c.job_id == job_id)
                             .values(progress_offset=progress_offset))
            return out

    def finish(self, job_id: str, owner: str, state: JobState, error: str, now: datetime,
               model_name: str = "", model_version: int = 0) -> Progress | None:
        with writer(self.engine).begin() as conn:
            row = self._one(conn, job_id, lock=True)
            if row is None or row["lease_owner"] != owner:
                return None
            check_move(job_id, JobState(row["state"]), state)
            conn.execute(update(jobs).where(jobs.c.job_id == job_id).values(
                state=state.value, error=error, finished_at=now, model_name=model_name,
                model_version=model_version, lease_expires_at=None))
            data: dict[str, Any] = {"state": state.value, "message": error}
            if model_version:
                data |= {"model_name": model_name, "model_version": model_version}
            return self._append(conn, row, [("state", data)], now)[0]
