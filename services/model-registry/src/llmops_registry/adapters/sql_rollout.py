"""CanaryStore and Lease on SQLAlchemy (SQLite and Postgres, one contract suite tests both).

Every canary write moves the aliases it implies in the same transaction, with their history
rows and outbox events (sql_family.move_pointer), so inference hears of a share change, a
promotion or a rollback the way it hears of any alias change. A share change or a failed check
leaves the `canary` alias where it is; it is recorded as a history row from and to the
candidate (a "note"), which announces the new share all the same.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from llmops_kit import db
from llmops_kit.errors import FailedPrecondition
from llmops_registry.adapters import sql_family as f
from llmops_registry.adapters.sql_family import MODELS
from llmops_registry.adapters.sql_rollout_schema import CanaryRow, LeaseRow
from llmops_registry.domain.canary import (
    CANARY_ALIAS,
    ROLLBACK_REASON,
    Canary,
    CanarySpec,
    CanaryState,
    Thresholds,
)
from llmops_registry.domain.errors import BadRequest, Missing
from llmops_registry.domain.model import PRODUCTION, Actor, PointerChange

ROLLOUT_ALIASES = (PRODUCTION, CANARY_ALIAS)


def _canary(row: CanaryRow, name: str) -> Canary:
    return Canary(
        tenant=row.tenant, name=name, production=row.production, candidate=row.candidate,
        share=row.share, step=row.step, max_share=row.max_share,
        interval_seconds=row.interval_seconds, threshold=row.threshold,
        thresholds=Thresholds(**(row.thresholds or {})), state=CanaryState(row.state),
        failed_checks=row.failed_checks, last_good=row.last_good, reason=row.reason,
        started_at=f.utc(row.started_at), updated_at=f.utc(row.updated_at),
        window_start=f.utc(row.window_start),
        next_check_at=f.utc(row.next_check_at) if row.next_check_at else None, id=row.id)


def _note(s: Session, owner: Any, scope: str, alias: str, version: int, reason: str,
          actor: Actor, at: datetime) -> None:
    """A history row (and event) of an alias that stays where it is: a canary step."""
    entry = MODELS.history(owner_id=owner.id, tenant=scope, name=alias, from_version=version,
                           to_version=version, actor=actor.tenant, reason=reason, changed_at=at)
    s.add(entry)
    s.flush()
    f.record_event(s, MODELS.change_kind, entry.id, actor, at)


def _effective(s: Session, owner: Any, tenant: str, alias: str) -> int:
    return f.effective_pointers(s, MODELS, owner.id, tenant).get(alias, 0)


class SqlRolloutStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = db.writer(engine)

    def _newest(self, s: Session, owner_id: int, tenant: str) -> CanaryRow | None:
        return s.scalars(select(CanaryRow).where(
            CanaryRow.owner_id == owner_id, CanaryRow.tenant == tenant)
            .order_by(CanaryRow.id.desc()).limit(1)).one_or_none()

    # ------------------------------------------------------------------ start / read

    def _start(self, tenant: str, name: str, spec: CanarySpec, reason: str,
               actor: Actor) -> Canary:
        at = f.now()
        with Session(self._writer) as s, s.begin():
            owner = f.visible_head(s, MODELS, name, tenant, lock=True)
            production = f.resolve(s, MODELS, owner, None, PRODUCTION, tenant)
            f.version_row(s, MODELS, owner, spec.candidate, tenant)
            if spec.candidate == production:
                raise BadRequest("SAME_VERSION",
                                 f"v{spec.candidate} is already {name}@production")
            current = self._newest(s, owner.id, tenant)
            if current is not None and current.state == CanaryState.PROGRESSING.value:
                raise FailedPrecondition(
                    "CANARY_IN_PROGRESS", f"{name} already has a canary of "
                    f"v{current.candidate} (abort or roll it back first)")
            row = CanaryRow(
                tenant=tenant, owner_id=owner.id, production=production,
                candidate=spec.candidate, share=spec.share, step=spec.step,
                max_share=spec.max_share, interval_seconds=spec.interval_seconds,
                threshold=spec.threshold, thresholds=asdict(spec.thresholds),
                state=CanaryState.PROGRESSING.value, failed_checks=0, last_good=production,
                reason=reason, started_at=at, updated_at=at, window_start=at,
                next_check_at=at + timedelta(seconds=spec.interval_seconds),
                created_by=actor.tenant)
            s.add(row)
            s.flush()
            move = f.move_pointer(s, MODELS, owner, tenant, CANARY_ALIAS, spec.candidate,
                                  reason, actor, at)
            if not move.changed:
                _note(s, owner, tenant, CANARY_ALIAS, spec.candidate, reason, actor, at)
            return _canary(row, owner.name)

    async def start_canary(self, tenant: str, name: str, spec: CanarySpec, reason: str,
                           actor: Actor) -> Canary:
        return await asyncio.to_thread(self._start, tenant, name, spec, reason, actor)

    def _get(self, tenant: str, name: str) -> Canary:
        with Session(self.engine) as s:
            owner = f.visible_head(s, MODELS, name, tenant)
            row = self._newest(s, owner.id, tenant)
            if row is None:
                raise Missing("CANARY_NOT_FOUND", f"{name} has no canary for this tenant")
            return _canary(row, owner.name)

    async def get_canary(self, tenant: str, name: str) -> Canary:
        return await asyncio.to_thread(self._get, tenant, name)

    def _due(self, now: datetime, limit: int) -> list[Canary]:
        with Session(self.engine) as s:
            rows = s.execute(select(CanaryRow, MODELS.head.name)
                             .join(MODELS.head, MODELS.head.id == CanaryRow.owner_id)
                             .where(CanaryRow.state == CanaryState.PROGRESSING.value,
                                    CanaryRow.next_check_at <= now)
                             .order_by(CanaryRow.next_check_at).limit(limit))
            return [_canary(row, name) for row, name in rows]

    async def due_canaries(self, now: datetime, limit: int) -> list[Canary]:
        return await asyncio.to_thread(self._due, now, limit)

    # ------------------------------------------------------------------ steps

    def _write_row(self, row: CanaryRow, c: Canary) -> None:
        row.share, row.state, row.failed_checks = c.share, c.state.value, c.failed_checks
        row.last_good, row.reason, row.updated_at = c.last_good, c.reason, c.updated_at
        row.window_start, row.next_check_at = c.window_start, c.next_check_at

    def _settle_aliases(self, s: Session, owner: Any, c: Canary, reason: str, actor: Actor,
                        at: datetime) -> None:
        """The aliases a canary's (final) state implies."""
        if c.state is CanaryState.PROMOTED:
            f.move_pointer(s, MODELS, owner, c.tenant, PRODUCTION, c.candidate, reason, actor,
                           at)
        elif _effective(s, owner, c.tenant, PRODUCTION) != c.last_good:
            f.move_pointer(s, MODELS, owner, c.tenant, PRODUCTION, c.last_good, reason, actor,
                           at)
        if f.pointer_row(s, MODELS, owner.id, c.tenant, CANARY_ALIAS) is not None:
            f.move_pointer(s, MODELS, owner, c.tenant, CANARY_ALIAS, 0, reason, actor, at)

    def _save(self, c: Canary, reason: str, actor: Actor, note: bool) -> Canary | None:
        with Session(self._writer) as s, s.begin():
            owner = f.head(s, MODELS, c.name, lock=True)
            row = s.get(CanaryRow, c.id, with_for_update=True)
            if row is None or row.state != CanaryState.PROGRESSING.value:
                return None
            self._write_row(row, c)
            if c.active:
                if note:
                    _note(s, owner, c.tenant, CANARY_ALIAS, c.candidate, reason, actor,
                          c.updated_at)
            else:
                self._settle_aliases(s, owner, c, reason, actor, c.updated_at)
            s.flush()
            return _canary(row, owner.name)

    async def save_step(self, canary: Canary, reason: str, actor: Actor,
                        note: bool) -> Canary | None:
        return await asyncio.to_thread(self._save, canary, reason, actor, note)

    def _unpromote(self, c: Canary, reason: str, actor: Actor) -> Canary:
        at = f.now()
        with Session(self._writer) as s, s.begin():
            owner = f.head(s, MODELS, c.name, lock=True)
            row = s.get_one(CanaryRow, c.id, with_for_update=True)
            row.state, row.share, row.reason, row.updated_at = (
                CanaryState.ROLLED_BACK.value, 0, reason, at)
            self._settle_aliases(s, owner, _canary(row, owner.name), reason, actor, at)
            s.flush()
            return _canary(row, owner.name)

    async def roll_back_promotion(self, canary: Canary, reason: str, actor: Actor) -> Canary:
        return await asyncio.to_thread(self._unpromote, canary, reason, actor)

    def _roll_back_alias(self, tenant: str, name: str, reason: str,
                         actor: Actor) -> tuple[int, int]:
        with Session(self._writer) as s, s.begin():
            owner = f.visible_head(s, MODELS, name, tenant, lock=True)
            # The newest change that was not itself a rollback: rolling back twice does not
            # bring the bad version back.
            last = s.scalars(select(MODELS.history).where(
                MODELS.history.owner_id == owner.id, MODELS.history.tenant == tenant,
                MODELS.history.name == PRODUCTION,
                MODELS.history.from_version != MODELS.history.to_version,
                MODELS.history.reason.not_like(f"{ROLLBACK_REASON}%"))
                .order_by(MODELS.history.id.desc()).limit(1)).one_or_none()
            current = _effective(s, owner, tenant, PRODUCTION)
            if last is None or last.to_version != current or last.from_version == 0:
                raise FailedPrecondition("NOTHING_TO_ROLL_BACK",
                                         f"{name}@production has no earlier version to go "
                                         "back to for this tenant")
            f.move_pointer(s, MODELS, owner, tenant, PRODUCTION, last.from_version, reason,
                           actor, f.now())
            return current, int(last.from_version)

    async def roll_back_alias(self, tenant: str, name: str, reason: str,
                              actor: Actor) -> tuple[int, int]:
        return await asyncio.to_thread(self._roll_back_alias, tenant, name, reason, actor)

    def _history(self, tenant: str, name: str, limit: int,
                 before: int | None) -> list[PointerChange]:
        with Session(self.engine) as s:
            owner = f.visible_head(s, MODELS, name, tenant)
            stmt = select(MODELS.history).where(MODELS.history.owner_id == owner.id,
                                                MODELS.history.tenant.in_(f.scopes(tenant)),
                                                MODELS.history.name.in_(ROLLOUT_ALIASES))
            if before is not None:
                stmt = stmt.where(MODELS.history.id < before)
            return [f.to_change(r) for r in
                    s.scalars(stmt.order_by(MODELS.history.id.desc()).limit(limit))]

    async def rollout_history(self, tenant: str, name: str, limit: int,
                              before_sequence: int | None) -> list[PointerChange]:
        return await asyncio.to_thread(self._history, tenant, name, limit, before_sequence)

    # ------------------------------------------------------------------ lease

    def _acquire(self, name: str, holder: str, ttl: float) -> bool:
        now = f.now()
        with Session(self._writer) as s, s.begin():
            s.execute(db.insert_ignore(self.engine, LeaseRow.__table__, {
                "name": name, "holder": holder, "expires_at": now + timedelta(seconds=ttl)}))
            row = s.get_one(LeaseRow, name, with_for_update=True)
            if row.holder != holder and f.utc(row.expires_at) > now:
                return False
            row.holder, row.expires_at = holder, now + timedelta(seconds=ttl)
            return True

    async def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        return await asyncio.to_thread(self._acquire, name, holder, ttl_seconds)
