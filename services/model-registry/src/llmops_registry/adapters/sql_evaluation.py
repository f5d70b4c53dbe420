"""EvaluationStore on the registry's SQL database (SQLite or Postgres, same tables).

A run and its results are written in one transaction with the run's EvaluationCompleted
event in the outbox (the relay publishes it, like every registry event).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from llmops_kit import db
from llmops_kit.evaluation.runs import QuestionResult, totals
from llmops_registry.adapters import sql_family as f
from llmops_registry.adapters.sql_schema import EvaluationResultRow, EvaluationRunRow
from llmops_registry.domain.evaluation import RunNotFound
from llmops_registry.domain.evaluation_model import EvaluationRun, NewEvaluationRun
from llmops_registry.domain.model import Actor

EVALUATION_COMPLETED = "evaluation_completed"
_FIELDS = {fld.name for fld in dataclasses.fields(QuestionResult)}


def _result(raw: dict[str, Any]) -> QuestionResult:
    return QuestionResult(**{k: v for k, v in raw.items() if k in _FIELDS})


def to_run(row: EvaluationRunRow, results: tuple[QuestionResult, ...] = ()) -> EvaluationRun:
    return EvaluationRun(
        id=row.run_id, tenant=row.tenant, model_name=row.model_name,
        model_version=row.model_version, prompt_name=row.prompt_name,
        prompt_version=row.prompt_version, dataset=row.dataset,
        created_at=f.utc(row.created_at), created_by=row.created_by,
        totals={k: float(v) for k, v in (row.totals or {}).items()}, results=results,
        sequence=row.id)


def load_run(s: Session, row_id: int) -> EvaluationRun:
    """A run with its results by its row id (the outbox's ref_id)."""
    row = s.get_one(EvaluationRunRow, row_id)
    results = s.scalars(select(EvaluationResultRow).where(EvaluationResultRow.run_id == row.id)
                        .order_by(EvaluationResultRow.id))
    return to_run(row, tuple(_result(r.result) for r in results))


class SqlEvaluationStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = db.writer(engine)

    def _record(self, new: NewEvaluationRun, actor: Actor) -> EvaluationRun:
        at = f.now()
        with Session(self._writer) as s, s.begin():
            row = EvaluationRunRow(
                run_id=f"ev-{uuid.uuid4().hex[:16]}", tenant=actor.tenant,
                model_name=new.model_name, model_version=new.model_version,
                prompt_name=new.prompt_name, prompt_version=new.prompt_version,
                dataset=new.dataset, totals=totals(new.results), created_at=at,
                created_by=actor.tenant)
            s.add(row)
            s.flush()
            s.add_all(EvaluationResultRow(run_id=row.id, tenant=actor.tenant,
                                          question_id=r.question_id, result=dataclasses.asdict(r))
                      for r in new.results)
            f.record_event(s, EVALUATION_COMPLETED, row.id, actor, at)
            return to_run(row, new.results)

    async def record_evaluation_run(self, new: NewEvaluationRun, actor: Actor) -> EvaluationRun:
        return await asyncio.to_thread(self._record, new, actor)

    def _get(self, run_id: str, tenant: str) -> EvaluationRun:
        with Session(self.engine) as s:
            row_id = s.scalar(select(EvaluationRunRow.id).where(
                EvaluationRunRow.run_id == run_id, EvaluationRunRow.tenant == tenant))
            if row_id is None:
                raise RunNotFound("EVALUATION_RUN_NOT_FOUND", f"no evaluation run {run_id!r}")
            return load_run(s, row_id)

    async def get_evaluation_run(self, run_id: str, *, tenant: str) -> EvaluationRun:
        return await asyncio.to_thread(self._get, run_id, tenant)

    def _list(self, tenant: str, model_name: str, model_version: int, dataset: str, limit: int,
              before: int | None) -> list[EvaluationRun]:
        stmt = select(EvaluationRunRow).where(EvaluationRunRow.tenant == tenant)
        if model_name:
            stmt = stmt.where(EvaluationRunRow.model_name == model_name)
        if model_version:
            stmt = stmt.where(EvaluationRunRow.model_version == model_version)
        if dataset:
            stmt = stmt.where(EvaluationRunRow.dataset == dataset)
        if before is not None:
            stmt = stmt.where(EvaluationRunRow.id < before)
        with Session(self.engine) as s:
            return [to_run(r) for r in s.scalars(stmt.order_by(EvaluationRunRow.id.desc())
                                                 .limit(limit))]

    async def list_evaluation_runs(
        self, tenant: str, model_name: str = "", model_version: int = 0, dataset: str = "",
        limit: int = 50, before_sequence: int | None = None,
    ) -> list[EvaluationRun]:
        return await asyncio.to_thread(self._list, tenant, model_name, model_version, dataset,
                                       limit, before_sequence)
