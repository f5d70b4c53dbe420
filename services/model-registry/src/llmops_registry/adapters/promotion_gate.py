"""PromotionGate adapters: the evaluation gate (interface 3 of the rollout work) and the
refusing stand-in used until one is configured.

The evaluation gate calls `llmops_registry.domain.gate.check_promotion(evaluations, tenant,
model, candidate, production, policy) -> GateDecision(allowed, reason, details)` by name, so
the rollout code does not depend on how evaluations are stored.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from llmops_registry.ports_rollout import GateResult

GATE_MODULE = "llmops_registry.domain.gate"


class EvaluationGate:
    def __init__(self, evaluations: Any, policy: Any = None) -> None:
        self.evaluations = evaluations
        self.policy = policy

    async def check(self, tenant: str, name: str, candidate: int,
                    production: int | None) -> GateResult:
        check_promotion = importlib.import_module(GATE_MODULE).check_promotion
        decision = check_promotion(self.evaluations, tenant, name, candidate, production,
                                   self.policy)
        if inspect.isawaitable(decision):
            decision = await decision
        return GateResult(bool(decision.allowed), str(decision.reason),
                          {k: float(x) for k, x in dict(decision.details or {}).items()})


class NoGate:
    """No evaluation gate configured: every canary is refused unless overridden (with a
    reason, recorded), so nothing reaches production unevaluated by default."""

    async def check(self, tenant: str, name: str, candidate: int,
                    production: int | None) -> GateResult:
        return GateResult(False, "no evaluation gate is configured in this registry")


def available() -> bool:
    """Whether the evaluation gate's module is installed in this registry."""
    try:
        importlib.import_module(GATE_MODULE)
    except ImportError:
        return False
    return True
