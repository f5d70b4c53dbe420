"""Tenant policies and the verdict: thresholds and PII handling, per direction."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmops_pii import PII_CATEGORIES
from llmops_safety.domain.model import Analysis, Direction, InjectionAction, Verdict


@dataclass(frozen=True)
class DirectionPolicy:
    # None: the check is reported but never blocks.
    toxicity_block: float | None = 0.8
    injection_block: float | None = 0.7
    redact: frozenset[str] = frozenset(PII_CATEGORIES)
    block: frozenset[str] = frozenset()
    # At or above injection_block: drop (BLOCK) or neutralise (REDACT, instructions removed).
    injection_action: InjectionAction = InjectionAction.DROP
    # Whether the learned injection detector scores beside the rules (when the engine has one).
    injection_model: bool = True

    @property
    def uses_injection_model(self) -> bool:
        return self.injection_model and self.injection_block is not None

    def __post_init__(self) -> None:
        overlap = self.redact & self.block
        if overlap:
            raise ValueError(f"categories both redacted and blocked: {sorted(overlap)}")
        unknown = (self.redact | self.block) - set(PII_CATEGORIES)
        if unknown:
            raise ValueError(f"unknown PII categories: {sorted(unknown)}")


@dataclass(frozen=True)
class TenantPolicy:
    input: DirectionPolicy = field(default_factory=DirectionPolicy)
    # Answers: injection text in an answer is not an attack on this model; leaked keys are.
    output: DirectionPolicy = field(default_factory=lambda: DirectionPolicy(
        injection_block=None,
        redact=frozenset(PII_CATEGORIES) - {"pii.api_key", "pii.secret"},
        block=frozenset({"pii.api_key", "pii.secret"}),
    ))
    # Retrieved passages: a document that tries to instruct the model is an attack (indirect
    # prompt injection); rude words in a document are not, so toxicity only scores. The learned
    # detector is off here by default: it was fitted on messages to a model, and documents
    # address their human readers with instructions all the time.
    context: DirectionPolicy = field(default_factory=lambda: DirectionPolicy(
        toxicity_block=None, injection_block=0.7, injection_model=False,
    ))

    def for_direction(self, direction: Direction) -> DirectionPolicy:
        if direction is Direction.CONTEXT:
            return self.context
        return self.input if direction is Direction.INPUT else self.output


@dataclass(frozen=True)
class PolicyBook:
    """The default policy and the tenants that override it (already merged)."""

    default: TenantPolicy = field(default_factory=TenantPolicy)
    tenants: dict[str, TenantPolicy] = field(default_factory=dict)

    def for_tenant(self, tenant: str | None) -> tuple[TenantPolicy, str]:
        """The tenant's policy and where it came from ("tenant" or "default")."""
        if tenant is not None and tenant in self.tenants:
            return self.tenants[tenant], "tenant"
        return self.default, "default"


def injection_triggered(analysis: Analysis, policy: DirectionPolicy) -> bool:
    inj = analysis.scores.get("prompt_injection", 0.0)
    return policy.injection_block is not None and inj >= policy.injection_block


def decide(analysis: Analysis, policy: DirectionPolicy) -> tuple[Verdict, tuple[str, ...]]:
    """BLOCK beats REDACT beats ALLOW; every reason that applies is listed."""
    blocks: list[str] = []
    redacts: list[str] = []
    tox = analysis.scores.get("toxicity", 0.0)
    if policy.toxicity_block is not None and tox >= policy.toxicity_block:
        blocks.append(f"toxicity {tox:.2f} >= {policy.toxicity_block:.2f}")
    if injection_triggered(analysis, policy):
        inj = analysis.scores["prompt_injection"]
        reason = f"prompt_injection {inj:.2f} >= {policy.injection_block:.2f}"
        if policy.injection_action is InjectionAction.NEUTRALISE:
            redacts.append(f"{reason} neutralised")
        else:
            blocks.append(reason)
    found = sorted({f.category for f in analysis.pii})
    blocks.extend(f"{c} blocked" for c in found if c in policy.block)
    redacts.extend(f"{c} redacted" for c in found if c in policy.redact)
    if blocks:
        return Verdict.BLOCK, tuple(blocks + redacts)
    if redacts:
        return Verdict.REDACT, tuple(redacts)
    return Verdict.ALLOW, ()
