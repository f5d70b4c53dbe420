"""RegistryStore on SQLAlchemy: SQLite by default, Postgres by URL (one contract suite tests both).

Methods are synchronous SQLAlchemy run in a worker thread (asyncio.to_thread), as in the other
services' SQL stores: the registry's load is a few writes a minute and reads by inference.
Reads take the tenant they are made for (`tenant`), writes the scope they write (`scope`); both
default to SHARED (see sql_family for what each sees).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from llmops_kit import db
from llmops_registry.adapters import sql_evaluation
from llmops_registry.adapters import sql_family as f
from llmops_registry.adapters.sql_family import MODELS, PROMPTS, Family
from llmops_registry.adapters.sql_schema import OutboxRow
from llmops_registry.domain.errors import Missing
from llmops_registry.domain.evaluation_model import EvaluationCompletedEvent
from llmops_registry.domain.model import (
    LATEST,
    SHARED,
    Actor,
    Lineage,
    ModelAliasChangedEvent,
    ModelVersion,
    ModelVersionCreatedEvent,
    NewModelVersion,
    NewPromptVersion,
    OutboxEntry,
    PointerChange,
    PointerMove,
    PromptLabelChangedEvent,
    PromptVersion,
    PromptVersionCreatedEvent,
    RegistryEvent,
    Summary,
)


def _model(row: Any, name: str, aliases: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(
        name=name, version=row.version, artifact_uri=row.artifact_uri, base_model=row.base_model,
        format=row.format, metadata=dict(row.meta or {}),
        lineage=Lineage(row.parent_name, row.parent_version, row.training_job_id,
                        row.dataset_uri),
        aliases=aliases, created_at=f.utc(row.created_at), created_by=row.created_by,
        tenant=row.tenant,
    )


def _prompt(row: Any, name: str, labels: tuple[str, ...]) -> PromptVersion:
    return PromptVersion(
        name=name, version=row.version, template=row.template,
        variables=tuple(row.variables or ()), labels=labels, description=row.description,
        created_at=f.utc(row.created_at), created_by=row.created_by, tenant=row.tenant,
    )


class SqlRegistryStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = db.writer(engine)

    def _read(self) -> Session:
        return Session(self.engine)

    def _write(self) -> Session:
        return Session(self._writer)

    # ------------------------------------------------------------------ shared by both families

    def _get(self, fam: Family, name: str, version: int | None, pointer: str | None,
             tenant: str) -> Any:
        with self._read() as s:
            owner = f.visible_head(s, fam, name, tenant)
            number = f.resolve(s, fam, owner, version, pointer, tenant)
            row = f.version_row(s, fam, owner, number, tenant)
            pointers = f.pointers_by_version(s, fam, owner.id, tenant).get(number, ())
            return (_model if fam is MODELS else _prompt)(row, owner.name, pointers)

    def _list(self, fam: Family, name: str, limit: int, before: int | None,
              tenant: str) -> list[Any]:
        with self._read() as s:
            owner = f.visible_head(s, fam, name, tenant)
            stmt = select(fam.version).where(fam.version.owner_id == owner.id,
                                             fam.version.tenant.in_(f.scopes(tenant)))
            if before is not None:
                stmt = stmt.where(fam.version.version < before)
            rows = s.scalars(stmt.order_by(fam.version.version.desc()).limit(limit))
            pointers = f.pointers_by_version(s, fam, owner.id, tenant)
            to = _model if fam is MODELS else _prompt
            return [to(r, owner.name, pointers.get(r.version, ())) for r in rows]

    def _set(self, fam: Family, name: str, pointer: str, version: int, reason: str,
             actor: Actor, scope: str) -> PointerMove:
        with self._write() as s, s.begin():
            owner = f.visible_head(s, fam, name, scope, lock=True)
            # A scope may point at what it sees: shared pointers at shared versions only.
            f.version_row(s, fam, owner, version, scope)
            return f.move_pointer(s, fam, owner, scope, pointer, version, reason, actor, f.now())

    def _history(self, fam: Family, name: str, pointer: str | None, limit: int,
                 before: int | None, tenant: str) -> list[PointerChange]:
        with self._read() as s:
            return f.history(s, fam, name, pointer, tenant, limit, before)

    def _summaries(self, fam: Family, limit: int, after: str | None,
                   tenant: str) -> list[Summary]:
        with self._read() as s:
            return f.summaries(s, fam, limit, after, tenant)

    # ------------------------------------------------------------------ models

    def _create_model(self, new: NewModelVersion, actor: Actor, aliases: Sequence[str],
                      only_if_absent: bool, scope: str) -> ModelVersion | None:
        at = f.now()
        with self._write() as s, s.begin():
            owner = f.ensure_head(s, MODELS, new.name, actor, at)
            if only_if_absent and owner.latest_version > 0:
                return None
            lin = new.lineage
            if lin.parent_version:
                try:
                    parent = f.head(s, MODELS, lin.parent_name)
                    f.version_row(s, MODELS, parent, lin.parent_version, scope)
                except Missing as exc:
                    raise Missing("PARENT_NOT_FOUND", f"lineage parent {lin.parent_name} "
                                  f"v{lin.parent_version} does not exist") from exc
            owner.latest_version += 1
            row = MODELS.version(
                owner_id=owner.id, version=owner.latest_version, artifact_uri=new.artifact_uri,
                base_model=new.base_model, format=new.format, meta=dict(new.metadata),
                parent_name=lin.parent_name, parent_version=lin.parent_version,
                training_job_id=lin.training_job_id, dataset_uri=lin.dataset_uri,
                created_at=at, created_by=actor.tenant, tenant=scope,
            )
            s.add(row)
            s.flush()
            f.record_event(s, MODELS.version_kind, row.id, actor, at)
            for alias in aliases:
                f.move_pointer(s, MODELS, owner, scope, alias, row.version, "set at registration",
                               actor, at)
            return _model(row, owner.name, tuple(sorted(aliases)))

    async def create_model_version(
        self, new: NewModelVersion, actor: Actor, aliases: Sequence[str] = (),
        *, scope: str = SHARED, only_if_absent: bool = False,
    ) -> ModelVersion | None:
        return await asyncio.to_thread(self._create_model, new, actor, aliases, only_if_absent,
                                       scope)

    async def get_model_version(self, name: str, version: int | None = None,
                                alias: str | None = None, *, tenant: str = SHARED) -> ModelVersion:
        result: ModelVersion = await asyncio.to_thread(self._get, MODELS, name, version, alias,
                                                       tenant)
        return result

    async def list_model_versions(self, name: str, limit: int, before_version: int | None = None,
                                  *, tenant: str = SHARED) -> list[ModelVersion]:
        return await asyncio.to_thread(self._list, MODELS, name, limit, before_version, tenant)

    async def list_models(self, limit: int, after_name: str | None = None,
                          *, tenant: str = SHARED) -> list[Summary]:
        return await asyncio.to_thread(self._summaries, MODELS, limit, after_name, tenant)

    async def set_alias(self, name: str, alias: str, version: int, reason: str,
                        actor: Actor, *, scope: str = SHARED) -> PointerMove:
        return await asyncio.to_thread(self._set, MODELS, name, alias, version, reason, actor,
                                       scope)

    def _delete_alias(self, name: str, alias: str, reason: str, actor: Actor, scope: str) -> int:
        with self._write() as s, s.begin():
            owner = f.visible_head(s, MODELS, name, scope, lock=True)
            if f.pointer_row(s, MODELS, owner.id, scope, alias) is None:
                raise Missing(MODELS.pointer_not_found,
                              f"model {name!r} has no alias {alias!r} in this scope")
            return f.move_pointer(s, MODELS, owner, scope, alias, 0, reason, actor,
                                  f.now()).previous_version

    async def delete_alias(self, name: str, alias: str, reason: str, actor: Actor,
                           *, scope: str = SHARED) -> int:
        return await asyncio.to_thread(self._delete_alias, name, alias, reason, actor, scope)

    async def alias_history(self, name: str, alias: str | None, limit: int,
                            before_sequence: int | None = None,
                            *, tenant: str = SHARED) -> list[PointerChange]:
        return await asyncio.to_thread(self._history, MODELS, name, alias, limit, before_sequence,
                                       tenant)

    # ------------------------------------------------------------------ prompts

    def _create_prompt(self, new: NewPromptVersion, actor: Actor, labels: Sequence[str],
                       only_if_absent: bool, scope: str) -> PromptVersion | None:
        at = f.now()
        with self._write() as s, s.begin():
            owner = f.ensure_head(s, PROMPTS, new.name, actor, at)
            if only_if_absent and owner.latest_version > 0:
                return None
            owner.latest_version += 1
            row = PROMPTS.version(owner_id=owner.id, version=owner.latest_version,
                                  template=new.template, variables=list(new.variables),
                                  description=new.description, created_at=at,
                                  created_by=actor.tenant, tenant=scope)
            s.add(row)
            s.flush()
            f.record_event(s, PROMPTS.version_kind, row.id, actor, at)
            reason = f"created version {row.version}"
            for label in (LATEST, *labels):
                f.move_pointer(s, PROMPTS, owner, scope, label, row.version,
                               reason if label == LATEST else "created with this label", actor, at)
            return _prompt(row, owner.name, tuple(sorted({LATEST, *labels})))

    async def create_prompt_version(
        self, new: NewPromptVersion, actor: Actor, labels: Sequence[str] = (),
        *, scope: str = SHARED, only_if_absent: bool = False,
    ) -> PromptVersion | None:
        return await asyncio.to_thread(self._create_prompt, new, actor, labels, only_if_absent,
                                       scope)

    async def get_prompt_version(self, name: str, version: int | None = None,
                                 label: str | None = None,
                                 *, tenant: str = SHARED) -> PromptVersion:
        result: PromptVersion = await asyncio.to_thread(self._get, PROMPTS, name, version, label,
                                                        tenant)
        return result

    async def list_prompt_versions(self, name: str, limit: int,
                                   before_version: int | None = None,
                                   *, tenant: str = SHARED) -> list[PromptVersion]:
        return await asyncio.to_thread(self._list, PROMPTS, name, limit, before_version, tenant)

    async def list_prompts(self, limit: int, after_name: str | None = None,
                           *, tenant: str = SHARED) -> list[Summary]:
        return await asyncio.to_thread(self._summaries, PROMPTS, limit, after_name, tenant)

    async def set_prompt_label(self, name: str, label: str, version: int, reason: str,
                               actor: Actor, *, scope: str = SHARED) -> PointerMove:
        return await asyncio.to_thread(self._set, PROMPTS, name, label, version, reason, actor,
                                       scope)

    async def label_history(self, name: str, label: str | None, limit: int,
                            before_sequence: int | None = None,
                            *, tenant: str = SHARED) -> list[PointerChange]:
        return await asyncio.to_thread(self._history, PROMPTS, name, label, limit,
                                       before_sequence, tenant)

    # ------------------------------------------------------------------ outbox

    def _event(self, s: Session, row: OutboxRow) -> RegistryEvent:
        if row.kind == sql_evaluation.EVALUATION_COMPLETED:
            return EvaluationCompletedEvent(sql_evaluation.load_run(s, row.ref_id))
        if row.kind in (f.MODEL_VERSION_CREATED, f.PROMPT_VERSION_CREATED):
            fam = MODELS if row.kind == f.MODEL_VERSION_CREATED else PROMPTS
            version = s.get_one(fam.version, row.ref_id)
            owner = s.get_one(fam.head, version.owner_id)
            # Pointers as the version's own scope resolves them.
            pointers = f.pointers_by_version(s, fam, owner.id, version.tenant).get(
                version.version, ())
            if fam is MODELS:
                return ModelVersionCreatedEvent(_model(version, owner.name, pointers))
            return PromptVersionCreatedEvent(_prompt(version, owner.name, pointers))
        fam = MODELS if row.kind == f.MODEL_ALIAS_CHANGED else PROMPTS
        entry = s.get_one(fam.history, row.ref_id)
        owner = s.get_one(fam.head, entry.owner_id)
        vrow, pointers = None, ()
        if entry.to_version:  # 0: the pointer was deleted, nothing to point at
            vrow = f.version_row(s, fam, owner, entry.to_version, entry.tenant)
            pointers = f.pointers_by_version(s, fam, owner.id, entry.tenant).get(
                entry.to_version, ())
        if fam is MODELS:
            return ModelAliasChangedEvent(owner.name, f.to_change(entry),
                                          _model(vrow, owner.name, pointers) if vrow else None)
        return PromptLabelChangedEvent(owner.name, f.to_change(entry),
                                       _prompt(vrow, owner.name, pointers) if vrow else None)

    def _pending(self, limit: int) -> list[OutboxEntry]:
        with self._read() as s:
            rows = s.scalars(select(OutboxRow).where(OutboxRow.published_at.is_(None))
                             .order_by(OutboxRow.id).limit(limit))
            return [OutboxEntry(r.id, r.event_id, r.tenant, r.trace_id, f.utc(r.created_at),
                                r.attempts, self._event(s, r)) for r in rows]

    async def pending_events(self, limit: int) -> list[OutboxEntry]:
        return await asyncio.to_thread(self._pending, limit)

    def _mark_published(self, ids: Sequence[int]) -> None:
        with self._write() as s, s.begin():
            s.execute(update(OutboxRow).where(OutboxRow.id.in_(list(ids)))
                      .values(published_at=f.now()))

    async def mark_published(self, ids: Sequence[int]) -> None:
        if ids:
            await asyncio.to_thread(self._mark_published, ids)

    def _mark_failed(self, entry_id: int, error: str) -> None:
        with self._write() as s, s.begin():
            s.execute(update(OutboxRow).where(OutboxRow.id == entry_id)
                      .values(attempts=OutboxRow.attempts + 1, last_error=error[:2000]))

    async def mark_failed(self, entry_id: int, error: str) -> None:
        await asyncio.to_thread(self._mark_failed, entry_id, error)
