"""Promote: the gate, then the tenant's `production` alias moves (or an override moves it).

The alias history's reason and the audit log record the verdict: the gate's comparison, or
the override's reason with the actor's key id. A refusal is FAILED_PRECONDITION GATE_FAILED
whose message carries the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmops_kit.errors import FailedPrecondition
from llmops_registry.domain import validation as v
from llmops_registry.domain.errors import Missing
from llmops_registry.domain.gate import GateDecision, GatePolicies, check_promotion
from llmops_registry.domain.model import PRODUCTION, Actor, PointerMove
from llmops_registry.domain.models import ModelRegistry
from llmops_registry.ports import EvaluationStore

MODEL_PROMOTE = "model.promote"


class GateFailed(FailedPrecondition):
    def __init__(self, decision: GateDecision) -> None:
        super().__init__("GATE_FAILED", decision.reason)
        self.decision = decision


@dataclass(frozen=True)
class Promotion:
    decision: GateDecision
    move: PointerMove
    overridden: bool


def _clip(text: str) -> str:
    return text if len(text) <= v.MAX_REASON else text[: v.MAX_REASON - 3] + "..."


class Promoter:
    def __init__(self, models: ModelRegistry, evaluations: EvaluationStore,
                 policies: GatePolicies) -> None:
        self.models = models
        self.evaluations = evaluations
        self.policies = policies

    async def _production(self, tenant: str, name: str) -> int | None:
        """The version the tenant is served as production (its own alias, else the shared)."""
        try:
            return (await self.models.get(tenant, name, alias=PRODUCTION)).version
        except Missing as exc:
            if exc.reason == "ALIAS_NOT_FOUND":
                return None
            raise

    async def promote(self, actor: Actor, name: str, version: int, dataset: str = "",
                      override_reason: str = "") -> Promotion:
        v.check_name(name, "model")
        v.check_version(version)
        v.check_text(override_reason, "override_reason", v.MAX_REASON)
        await self.models.get(actor.tenant, name, version)  # NOT_FOUND before anything else
        production = await self._production(actor.tenant, name)
        decision = await check_promotion(self.evaluations, actor.tenant, name, version,
                                         production, self.policies.for_tenant(actor.tenant),
                                         dataset.strip())
        overridden = not decision.allowed and bool(override_reason.strip())
        if not decision.allowed and not overridden:
            await self.models.auditor.record(actor, MODEL_PROMOTE, f"{name}@{PRODUCTION}",
                                             actor.tenant, None,
                                             {"version": version, "allowed": False,
                                              "reason": _clip(decision.reason)})
            raise GateFailed(decision)
        if overridden:
            reason = (f"promoted by override of {actor.key_id or actor.tenant}: "
                      f"{override_reason.strip()}; {decision.reason}")
        else:
            reason = f"promoted: {decision.reason}"
        move = await self.models.set_alias(actor, name, PRODUCTION, version, _clip(reason))
        await self.models.auditor.record(
            actor, MODEL_PROMOTE, f"{name}@{PRODUCTION}", actor.tenant,
            {"version": move.previous_version} if move.previous_version else None,
            {"version": version, "allowed": decision.allowed, "overridden": overridden,
             "override_reason": override_reason.strip(), "reason": _clip(decision.reason),
             "details": decision.details})
        return Promotion(decision, move, overridden)
