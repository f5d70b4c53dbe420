"""PromotionGate adapters: the evaluation gate (interface 3 of the rollout work) and the
refusing stand-in used until one is configured.

The evaluation gate is handed its check: `check_promotion(evaluations, tenant, model,
candidate, production, policy) -> GateDecision(allowed, reason, details)`, by default the
domain's (`llmops_registry.domain.gate.check_promotion`), so the rollout code does not depend
on how evaluations are stored and tests pass their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from llmops_registry.domain.gate import GateDecision, check_promotion
from llmops_registry.ports_rollout import GateResult

# (evaluations, tenant, model, candidate, production, policy) -> the gate's decision.
CheckPromotion = Callable[[Any, str, str, int, int | None, Any], Awaitable[GateDecision]]


class EvaluationGate:
    def __init__(self, evaluations: Any, policy: Any = None,
                 check: CheckPromotion = check_promotion) -> None:
        self.evaluations = evaluations
        self.policy = policy
        self.check_promotion = check

    async def check(self, tenant: str, name: str, candidate: int,
                    production: int | None) -> GateResult:
        decision = await self.check_promotion(self.evaluations, tenant, name, candidate,
                                              production, self.policy)
        return GateResult(bool(decision.allowed), str(decision.reason),
                          {k: float(x) for k, x in dict(decision.details or {}).items()})


class NoGate:
    """No evaluation gate configured: every canary is refused unless overridden (with a
    reason, recorded), so nothing reaches production unevaluated by default."""

    async def check(self, tenant: str, name: str, candidate: int,
                    production: int | None) -> GateResult:
        return GateResult(False, "no evaluation gate is configured in this registry")
