"""Rollout use cases: start a canary (through the promotion gate), read it, abort it, roll back,
and apply one analysis step (the controller's). Every change is audited and published.

Canaries are always a tenant's own: they move the caller's tenant's `production` and `canary`
aliases, never the shared ones.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

from llmops_kit.errors import FailedPrecondition
from llmops_registry.domain import audit as a
from llmops_registry.domain import validation as v
from llmops_registry.domain.audit import Auditor
from llmops_registry.domain.canary import (
    ROLLBACK_REASON,
    Canary,
    CanarySpec,
    CanaryState,
    Check,
    Move,
    Step,
    Thresholds,
    VersionMetrics,
    analyse,
    decide,
)
from llmops_registry.domain.errors import BadRequest, Missing
from llmops_registry.domain.model import PRODUCTION, Actor, Page, PointerChange
from llmops_registry.domain.outbox import OutboxRelay
from llmops_registry.ports import ModelStore
from llmops_registry.ports_rollout import CanaryMetrics, CanaryStore, PromotionGate

log = logging.getLogger(__name__)

CANARY_START = "canary.start"
CANARY_STEP = "canary.step"
CANARY_ABORT = "canary.abort"
ROLLBACK = "model.rollback"


def check_spec(spec: CanarySpec) -> CanarySpec:
    v.check_version(spec.candidate)
    for field, value, low in (("share", spec.share, 1), ("step", spec.step, 1),
                              ("max_share", spec.max_share, 1)):
        if not low <= value <= 100:
            raise BadRequest(f"BAD_{field.upper()}", f"{field} must be 1-100, got {value}")
    if spec.share > spec.max_share:
        raise BadRequest("BAD_SHARE", f"share {spec.share} is above max_share {spec.max_share}")
    if not 1 <= spec.interval_seconds <= 86400:
        raise BadRequest("BAD_INTERVAL", "interval_seconds must be 1-86400")
    if not 1 <= spec.threshold <= 100:
        raise BadRequest("BAD_THRESHOLD", "threshold must be 1-100")
    t = spec.thresholds
    if min(t.max_error_rate_increase, t.max_latency_ratio, t.max_safety_block_increase,
           t.max_groundedness_drop, t.max_negative_feedback_increase) < 0 or t.min_requests < 1:
        raise BadRequest("BAD_THRESHOLDS", "metric thresholds must be >= 0, min_requests >= 1")
    return spec


def _state(c: Canary) -> dict[str, object]:
    return {"candidate": c.candidate, "production": c.production, "share": c.share,
            "state": c.state.value, "failed_checks": c.failed_checks}


class Rollouts:
    def __init__(self, store: CanaryStore, models: ModelStore, relay: OutboxRelay,
                 auditor: Auditor, gate: PromotionGate, defaults: Thresholds | None = None,
                 limits: v.Limits | None = None) -> None:
        self.store = store
        self.models = models
        self.relay = relay
        self.auditor = auditor
        self.gate = gate
        self.defaults = defaults or Thresholds()
        self.limits = limits or v.Limits()

    async def start(self, actor: Actor, name: str, spec: CanarySpec, reason: str = "",
                    override_gate: bool = False) -> Canary:
        v.check_name(name, "model")
        v.check_text(reason, "reason", v.MAX_REASON)
        spec = check_spec(replace(spec, thresholds=self.defaults.merged(spec.thresholds)))
        if override_gate and not reason.strip():
            raise BadRequest("REASON_REQUIRED", "overriding the promotion gate needs a reason")
        current = await self._production(actor.tenant, name)
        decision = await self.gate.check(actor.tenant, name, spec.candidate, current)
        if not decision.allowed and not override_gate:
            raise FailedPrecondition("GATE_REFUSED", f"promotion gate: {decision.reason}")
        gate_note = (f"gate: {decision.reason}" if decision.allowed
                     else f"gate overridden ({decision.reason})")
        why = (f"canary of v{spec.candidate} started at {spec.share}% (step {spec.step}, "
               f"max {spec.max_share}%, every {spec.interval_seconds}s, threshold "
               f"{spec.threshold}); {gate_note}" + (f"; {reason}" if reason else ""))
        canary = await self.store.start_canary(actor.tenant, name, spec, why, actor)
        await self.auditor.record(actor, CANARY_START, f"{name}@canary", actor.tenant, None,
                                  _state(canary))
        await self.relay.flush()
        return canary

    async def _production(self, tenant: str, name: str) -> int | None:
        try:
            return (await self.models.get_model_version(name, alias=PRODUCTION,
                                                        tenant=tenant)).version
        except Missing as exc:
            if exc.reason != "ALIAS_NOT_FOUND":
                raise
            return None

    async def get(self, tenant: str, name: str) -> Canary:
        v.check_name(name, "model")
        return await self.store.get_canary(tenant, name)

    async def abort(self, actor: Actor, name: str, reason: str = "") -> Canary:
        v.check_name(name, "model")
        v.check_text(reason, "reason", v.MAX_REASON)
        canary = await self.store.get_canary(actor.tenant, name)
        if not canary.active:
            raise FailedPrecondition("CANARY_NOT_PROGRESSING",
                                     f"the canary of v{canary.candidate} is {canary.state.value}")
        now = datetime.now(UTC)
        why = f"canary of v{canary.candidate} aborted at {canary.share}%" + (
            f": {reason}" if reason else "")
        after = replace(canary, state=CanaryState.ABORTED, share=0, reason=why, updated_at=now,
                        next_check_at=None)
        saved = await self.store.save_step(after, why, actor, note=False)
        if saved is None:
            raise FailedPrecondition("CANARY_NOT_PROGRESSING", "the canary ended meanwhile")
        await self.auditor.record(actor, CANARY_ABORT, f"{name}@canary", actor.tenant,
                                  _state(canary), _state(saved))
        await self.relay.flush()
        return saved

    async def rollback(self, actor: Actor, name: str,
                       reason: str = "") -> tuple[int, int, Canary | None]:
        """(production before, production after, the canary rolled back if any)."""
        v.check_name(name, "model")
        v.check_text(reason, "reason", v.MAX_REASON)
        suffix = f": {reason}" if reason else ""
        canary = await self._newest(actor.tenant, name)
        saved: Canary | None = None
        if canary is not None and canary.active:
            why = f"rolled back v{canary.candidate} at {canary.share}% by request{suffix}"
            saved = await self.store.save_step(
                replace(canary, state=CanaryState.ROLLED_BACK, share=0, reason=why,
                        updated_at=datetime.now(UTC), next_check_at=None), why, actor,
                note=False)
            before, after = canary.production, canary.last_good
        elif canary is not None and canary.state is CanaryState.PROMOTED:
            why = f"rolled back promoted v{canary.candidate} to v{canary.last_good}{suffix}"
            saved = await self.store.roll_back_promotion(canary, why, actor)
            before, after = canary.candidate, canary.last_good
        else:
            before, after = await self.store.roll_back_alias(
                actor.tenant, name, f"{ROLLBACK_REASON}{suffix}", actor)
        await self.auditor.record(actor, ROLLBACK, f"{name}@production", actor.tenant,
                                  a.version_state(before), a.version_state(after))
        await self.relay.flush()
        return before, after, saved

    async def _newest(self, tenant: str, name: str) -> Canary | None:
        try:
            return await self.store.get_canary(tenant, name)
        except Missing as exc:
            if exc.reason != "CANARY_NOT_FOUND":
                raise
            return None

    async def history(self, tenant: str, name: str, page_size: int = 0,
                      page_token: str = "") -> Page[PointerChange]:
        v.check_name(name, "model")
        size = v.page_size(page_size, self.limits)
        rows = await self.store.rollout_history(tenant, name, size + 1,
                                                v.decode_int_token(page_token))
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, v.encode_token(rows[-1].sequence) if more else "")

    async def run_check(self, canary: Canary, metrics: CanaryMetrics, actor: Actor,
                        now: datetime | None = None) -> Step:
        """One check of one canary over the window since its last verdict (the controller)."""
        now = now or datetime.now(UTC)
        by_version = await metrics.window(canary.tenant, canary.name, canary.window_start, now)
        check: Check = analyse(by_version.get(canary.candidate, _NONE),
                               by_version.get(canary.production, _NONE), canary.thresholds)
        step = decide(canary, check, now)
        saved = await self.store.save_step(step.canary, step.reason, actor,
                                           note=step.move in (Move.ADVANCE, Move.HOLD))
        if saved is None:
            return Step(Move.WAIT, canary, "the canary ended meanwhile")
        if step.move is not Move.WAIT:
            log.info("canary %s/%s: %s", canary.tenant, canary.name, step.reason)
            await self.auditor.record(actor, CANARY_STEP, f"{canary.name}@canary",
                                      canary.tenant, _state(canary), _state(saved))
            await self.relay.flush()
        return Step(step.move, saved, step.reason)


_NONE = VersionMetrics()
