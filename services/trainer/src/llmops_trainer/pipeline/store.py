"""LoopStore in the trainer's SQL database (SQLite or Postgres): the loops and their steps.

A step is written with its loop in one transaction and marked published once emitted, so a
trainer that stops between the two emits it again at start-up (consumers see it at least
once; its event id is `<loop id>-<sequence>`). A save names the step count it read: a loop
another replica moved meanwhile is not overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from llmops_kit.db import create_schema, writer
from llmops_trainer.pipeline.model import FINAL, Loop, LoopState, Step, Trigger

metadata = MetaData()
loops = Table(
    "trainer_ct_loops", metadata,
    Column("loop_id", String(64), primary_key=True),
    Column("tenant_id", String(128), nullable=False, index=True),
    Column("state", String(16), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("steps", Integer, nullable=False),
    Column("loop_json", Text, nullable=False),
)
steps = Table(
    "trainer_ct_steps", metadata,
    Column("loop_id", String(64), primary_key=True),
    Column("sequence", Integer, primary_key=True),
    Column("step", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("loop_json", Text, nullable=False),
    Column("published", Boolean, nullable=False, default=False),
    Index("ix_trainer_ct_steps_published", "published"),
)
_FINAL = [s.value for s in FINAL]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _dump(loop: Loop) -> str:
    data = asdict(loop)
    data.update(created_at=loop.created_at.isoformat(), updated_at=loop.updated_at.isoformat(),
                state=loop.state.value, trigger=loop.trigger.value)
    return json.dumps(data, sort_keys=True)


def _load(text: str) -> Loop:
    data: dict[str, Any] = json.loads(text)
    data.update(created_at=datetime.fromisoformat(data["created_at"]),
                updated_at=datetime.fromisoformat(data["updated_at"]),
                state=LoopState(data["state"]), trigger=Trigger(data["trigger"]))
    return Loop(**data)


def _step(row: RowMapping) -> Step:
    return Step(_load(row["loop_json"]), row["step"], int(row["sequence"]), _utc(row["at"]))


class SqlLoopStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_schema(metadata, engine)

    def _steps(self, conn: Connection, items: Sequence[Step]) -> None:
        for s in items:
            conn.execute(steps.insert().values(loop_id=s.loop.loop_id, sequence=s.sequence,
                                               step=s.step, at=s.at, loop_json=_dump(s.loop),
                                               published=False))

    def add(self, loop: Loop, step: Step) -> bool:
        try:
            with writer(self.engine).begin() as conn:
                conn.execute(loops.insert().values(
                    loop_id=loop.loop_id, tenant_id=loop.tenant, state=loop.state.value,
                    created_at=loop.created_at, steps=loop.steps, loop_json=_dump(loop)))
                self._steps(conn, [step])
        except IntegrityError:
            return False
        return True

    def get(self, loop_id: str) -> Loop | None:
        with self.engine.connect() as conn:
            text = conn.execute(select(loops.c.loop_json).where(loops.c.loop_id == loop_id)
                                ).scalar()
        return _load(text) if text else None

    def active(self, tenant: str | None = None) -> list[Loop]:
        query = select(loops.c.loop_json).where(loops.c.state.not_in(_FINAL))
        if tenant is not None:
            query = query.where(loops.c.tenant_id == tenant)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(loops.c.created_at, loops.c.loop_id)).scalars()
            return [_load(t) for t in rows]

    def latest_started(self, tenant: str) -> Loop | None:
        query = select(loops.c.loop_json).where(
            loops.c.tenant_id == tenant, loops.c.state != LoopState.SKIPPED.value
        ).order_by(loops.c.created_at.desc()).limit(1)
        with self.engine.connect() as conn:
            text = conn.execute(query).scalar()
        return _load(text) if text else None

    def save(self, loop: Loop, items: Sequence[Step], expected_steps: int) -> bool:
        with writer(self.engine).begin() as conn:
            done = conn.execute(update(loops).where(
                loops.c.loop_id == loop.loop_id, loops.c.steps == expected_steps
            ).values(state=loop.state.value, steps=loop.steps, loop_json=_dump(loop)))
            if done.rowcount != 1:
                return False
            self._steps(conn, items)
        return True

    def unpublished(self, limit: int) -> list[Step]:
        query = select(steps).where(steps.c.published.is_(False)).order_by(
            steps.c.at, steps.c.loop_id, steps.c.sequence).limit(limit)
        with self.engine.connect() as conn:
            return [_step(r) for r in conn.execute(query).mappings()]

    def mark_published(self, loop_id: str, sequence: int) -> None:
        with writer(self.engine).begin() as conn:
            conn.execute(update(steps).where(steps.c.loop_id == loop_id,
                                             steps.c.sequence == sequence
                                             ).values(published=True))

    def steps(self, loop_id: str) -> list[Step]:
        query = select(steps).where(steps.c.loop_id == loop_id).order_by(steps.c.sequence)
        with self.engine.connect() as conn:
            return [_step(r) for r in conn.execute(query).mappings()]

    def delete_tenant(self, tenant: str) -> int:
        with writer(self.engine).begin() as conn:
            ids = select(loops.c.loop_id).where(loops.c.tenant_id == tenant)
            conn.execute(steps.delete().where(steps.c.loop_id.in_(ids)))
            return int(conn.execute(loops.delete().where(loops.c.tenant_id == tenant)
                                    ).rowcount or 0)
