"""The promotion gate: may a candidate version replace a tenant's production version?

The candidate's latest evaluation run on the evaluation set must be at least as good as
production's latest run on the same set, metric by metric, within the tenant's margins:

    holds_fact  min_delta 0.0   candidate >= production + 0.0
    latency_p95_ms max_ratio 1.2  candidate <= production * 1.2
    refusals    max_delta 0.05  candidate <= production + 0.05

A missing run (candidate's or production's) refuses with a reason; so does a metric the
candidate's run lacks while production's has it. With no production version there is nothing
to compare: a candidate with a run passes. Called by Promote here and by the rollout's canary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llmops_kit.evaluation.runs import METRICS
from llmops_registry.domain.evaluation_model import EvaluationRun
from llmops_registry.ports import EvaluationStore


@dataclass(frozen=True)
class GateRule:
    """One metric's bound; set exactly one of the three."""

    metric: str
    min_delta: float | None = None
    max_delta: float | None = None
    max_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"gate metric {self.metric!r} is not one of {sorted(METRICS)}")
        if sum(x is not None for x in (self.min_delta, self.max_delta, self.max_ratio)) != 1:
            raise ValueError(f"gate rule {self.metric}: set one of min_delta, max_delta, "
                             "max_ratio")

    def limit(self, production: float) -> float:
        if self.min_delta is not None:
            return production + self.min_delta
        if self.max_delta is not None:
            return production + self.max_delta
        return production * (self.max_ratio or 0.0)

    def passes(self, candidate: float, production: float) -> bool:
        bound = self.limit(production)
        return candidate >= bound if self.min_delta is not None else candidate <= bound

    @property
    def op(self) -> str:
        return ">=" if self.min_delta is not None else "<="


DEFAULT_RULES = (GateRule("holds_fact", min_delta=0.0), GateRule("cited", min_delta=0.0),
                 GateRule("latency_p95_ms", max_ratio=1.2))


@dataclass(frozen=True)
class GatePolicy:
    rules: tuple[GateRule, ...] = DEFAULT_RULES
    # The tenant's evaluation set; "": the set of the candidate's latest run.
    dataset: str = ""


@dataclass(frozen=True)
class GateCheck:
    metric: str
    candidate: float
    production: float
    limit: float
    passed: bool

    def describe(self, op: str) -> str:
        return (f"{self.metric} {self.candidate:.4g} {op} {self.limit:.4g} "
                f"(production {self.production:.4g}): {'ok' if self.passed else 'FAILED'}")


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reason: str
    # "<metric>.candidate", "<metric>.production", "<metric>.limit", "<metric>.passed" (1/0).
    details: dict[str, float]
    checks: tuple[GateCheck, ...] = ()
    dataset: str = ""
    candidate_run: str = ""
    production_run: str = ""


async def latest_run(evaluations: EvaluationStore, tenant: str, model: str, version: int,
                     dataset: str = "") -> EvaluationRun | None:
    runs = await evaluations.list_evaluation_runs(tenant, model, version, dataset, limit=1)
    return runs[0] if runs else None


def compare_runs(candidate: EvaluationRun, production: EvaluationRun,
                 rules: tuple[GateRule, ...]) -> tuple[list[GateCheck], list[str]]:
    """Each rule's check, and the lines describing them (failed metrics named)."""
    checks: list[GateCheck] = []
    lines: list[str] = []
    for rule in rules:
        cand = candidate.totals.get(rule.metric)
        prod = production.totals.get(rule.metric)
        if prod is None:
            continue  # production's run could not measure it: nothing to hold the candidate to
        if cand is None:
            checks.append(GateCheck(rule.metric, float("nan"), prod, rule.limit(prod), False))
            lines.append(f"{rule.metric}: the candidate's run has no value: FAILED")
            continue
        check = GateCheck(rule.metric, cand, prod, rule.limit(prod), rule.passes(cand, prod))
        checks.append(check)
        lines.append(check.describe(rule.op))
    return checks, lines


async def check_promotion(evaluations: EvaluationStore, tenant: str, model: str,
                          candidate: int, production: int | None,
                          policy: GatePolicy | GatePolicies | None = None,
                          dataset: str = "") -> GateDecision:
    """The gate's verdict for promoting `model` v`candidate` over v`production` (None: the
    tenant has no production version) for `tenant`, on `dataset` (else the policy's set, else
    the set of the candidate's latest run). `policy`: one policy, the per-tenant policies
    (the tenant's is used), or None for the default rules."""
    if policy is None:
        policy = GatePolicy()
    elif isinstance(policy, GatePolicies):
        policy = policy.for_tenant(tenant)
    dataset = dataset or policy.dataset
    cand_run = await latest_run(evaluations, tenant, model, candidate, dataset)
    label = f"{model}@{candidate}"
    if cand_run is None:
        where = f" on {dataset}" if dataset else ""
        return GateDecision(False, f"{label} has no evaluation run{where} for this tenant", {},
                            dataset=dataset)
    dataset = cand_run.dataset
    if production is None:
        return GateDecision(True, f"no production version to compare with; {label} has run "
                            f"{cand_run.id} on {dataset}", {}, dataset=dataset,
                            candidate_run=cand_run.id)
    if production == candidate:
        return GateDecision(True, f"{label} is already production", {}, dataset=dataset,
                            candidate_run=cand_run.id, production_run=cand_run.id)
    prod_run = await latest_run(evaluations, tenant, model, production, dataset)
    if prod_run is None:
        return GateDecision(False, f"production {model}@{production} has no evaluation run on "
                            f"{dataset} for this tenant", {}, dataset=dataset,
                            candidate_run=cand_run.id)
    checks, lines = compare_runs(cand_run, prod_run, policy.rules)
    details: dict[str, float] = {}
    for c in checks:
        if math.isnan(c.candidate):
            continue  # JSON (audit log) has no NaN; the reason names the missing metric
        details.update({f"{c.metric}.candidate": c.candidate,
                        f"{c.metric}.production": c.production, f"{c.metric}.limit": c.limit,
                        f"{c.metric}.passed": 1.0 if c.passed else 0.0})
    allowed = all(c.passed for c in checks)
    head = (f"gate {'passed' if allowed else 'failed'}: {label} (run {cand_run.id}) vs "
            f"production {model}@{production} (run {prod_run.id}) on {dataset}")
    return GateDecision(allowed, "; ".join([head, *lines]), details, tuple(checks), dataset,
                        cand_run.id, prod_run.id)


@dataclass(frozen=True)
class GatePolicies:
    """The default policy and per-tenant ones (settings)."""

    default: GatePolicy = field(default_factory=GatePolicy)
    tenants: dict[str, GatePolicy] = field(default_factory=dict)

    def for_tenant(self, tenant: str) -> GatePolicy:
        return self.tenants.get(tenant, self.default)
