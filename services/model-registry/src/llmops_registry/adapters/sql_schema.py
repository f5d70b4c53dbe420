"""The registry's tables (SQLAlchemy 2, same schema on SQLite and Postgres).

Models and prompts have the same shape: a head row (name, version counter), immutable versions,
movable pointers (model aliases, prompt labels) and an append-only pointer history whose ids are
the `sequence` of each change. The outbox holds one row per event, written in the same
transaction as the change it announces. Created with create_all at start; schema changes
will need migrations (Alembic) once a deployed schema must evolve.

Scopes: versions, pointers and history rows carry a `tenant` column, "" for shared rows. A
pointer's key includes it, so a tenant's own `production` and the shared one are two rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    inspect,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from llmops_kit import db
from llmops_kit.db import make_engine

__all__ = ["Base", "create_schema", "make_engine"]

NAME = String(128)
POINTER = String(63)
TENANT = String(128)


class Base(DeclarativeBase):
    pass


class _Head:
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(TENANT)


class _Scoped:
    # "" (shared) or the tenant that owns the row.
    tenant: Mapped[str] = mapped_column(TENANT, default="")


class _Pointer:
    tenant: Mapped[str] = mapped_column(TENANT, primary_key=True, default="")
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(TENANT)


class _History(_Scoped):
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    from_version: Mapped[int] = mapped_column(Integer)
    to_version: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(TENANT)
    reason: Mapped[str] = mapped_column(Text, default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModelRow(_Head, Base):
    __tablename__ = "models"


class ModelVersionRow(_Scoped, Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column("model_id", ForeignKey("models.id"))
    version: Mapped[int] = mapped_column(Integer)
    artifact_uri: Mapped[str] = mapped_column(Text)
    base_model: Mapped[str] = mapped_column(String(256), default="")
    format: Mapped[str] = mapped_column(String(32), default="")
    meta: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    parent_name: Mapped[str] = mapped_column(NAME, default="")
    parent_version: Mapped[int] = mapped_column(Integer, default=0)
    training_job_id: Mapped[str] = mapped_column(String(256), default="")
    dataset_uri: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(TENANT)


class ModelAliasRow(_Pointer, Base):
    __tablename__ = "model_aliases"
    owner_id: Mapped[int] = mapped_column("model_id", ForeignKey("models.id"), primary_key=True)
    name: Mapped[str] = mapped_column("alias", POINTER, primary_key=True)


class ModelAliasHistoryRow(_History, Base):
    __tablename__ = "model_alias_history"
    __table_args__ = (Index("ix_model_alias_history_owner", "model_id", "tenant", "alias", "id"),)
    owner_id: Mapped[int] = mapped_column("model_id", ForeignKey("models.id"))
    name: Mapped[str] = mapped_column("alias", POINTER)


class PromptRow(_Head, Base):
    __tablename__ = "prompts"


class PromptVersionRow(_Scoped, Base):
    __tablename__ = "prompt_versions"
    __table_args__ = (UniqueConstraint("prompt_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column("prompt_id", ForeignKey("prompts.id"))
    version: Mapped[int] = mapped_column(Integer)
    template: Mapped[str] = mapped_column(Text)
    variables: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(TENANT)


class PromptLabelRow(_Pointer, Base):
    __tablename__ = "prompt_labels"
    owner_id: Mapped[int] = mapped_column("prompt_id", ForeignKey("prompts.id"), primary_key=True)
    name: Mapped[str] = mapped_column("label", POINTER, primary_key=True)


class PromptLabelHistoryRow(_History, Base):
    __tablename__ = "prompt_label_history"
    __table_args__ = (Index("ix_prompt_label_history_owner", "prompt_id", "tenant", "label", "id"),)
    owner_id: Mapped[int] = mapped_column("prompt_id", ForeignKey("prompts.id"))
    name: Mapped[str] = mapped_column("label", POINTER)


class EvaluationRunRow(_Scoped, Base):
    """One evaluation run of a model version (the tenant that recorded it owns it)."""

    __tablename__ = "evaluation_runs"
    __table_args__ = (Index("ix_evaluation_runs_model", "tenant", "model_name", "model_version",
                            "dataset", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True)
    model_name: Mapped[str] = mapped_column(NAME)
    model_version: Mapped[int] = mapped_column(Integer)
    prompt_name: Mapped[str] = mapped_column(NAME, default="")
    prompt_version: Mapped[int] = mapped_column(Integer, default=0)
    dataset: Mapped[str] = mapped_column(String(256))
    totals: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(TENANT)


class EvaluationResultRow(_Scoped, Base):
    """One question of a run; `result` is the QuestionResult's fields."""

    __tablename__ = "evaluation_results"
    __table_args__ = (UniqueConstraint("run_id", "question_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("evaluation_runs.id"), index=True)
    question_id: Mapped[str] = mapped_column(String(128))
    result: Mapped[dict[str, object]] = mapped_column(JSON)


class OutboxRow(Base):
    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Which event, and the id of the row (version or history entry) it announces.
    kind: Mapped[str] = mapped_column(String(32))
    ref_id: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant: Mapped[str] = mapped_column(TENANT)
    trace_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")


def create_schema(engine: Engine) -> None:
    # The rollout tables live in their own module on the same metadata.
    from llmops_registry.adapters import sql_rollout_schema  # noqa: F401

    db.create_schema(Base.metadata, engine)
    # create_all leaves existing tables as they are: a database from before scopes would fail
    # on its first query instead of at start-up.
    if "tenant" not in {c["name"] for c in inspect(engine).get_columns("model_aliases")}:
        raise RuntimeError(
            "the registry database predates tenant scopes (model_aliases has no tenant column): "
            "migrate it or start from an empty database")
