"""The promotion gate's margins and refusals (a fake run store)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from llmops_registry.domain.evaluation_model import EvaluationRun
from llmops_registry.domain.gate import GatePolicies, GatePolicy, GateRule, check_promotion

pytestmark = pytest.mark.unit


class Runs:
    def __init__(self, *runs: EvaluationRun) -> None:
        self.runs = list(runs)

    async def list_evaluation_runs(self, tenant: str, model_name: str = "", model_version: int = 0,
                                   dataset: str = "", limit: int = 50,
                                   before_sequence: int | None = None) -> list[EvaluationRun]:
        found = [r for r in reversed(self.runs) if r.tenant == tenant
                 and r.model_name == model_name and r.model_version == model_version
                 and (not dataset or r.dataset == dataset)]
        return found[:limit]


def run(version: int, dataset: str = "set", tenant: str = "acme", **totals: float
        ) -> EvaluationRun:
    return EvaluationRun(f"ev-{version}-{dataset}", tenant, "m", version, "rag-answer", 1,
                         dataset, datetime.now(UTC), tenant, dict(totals))


POLICY = GatePolicy((GateRule("holds_fact", min_delta=-0.02), GateRule("cited", min_delta=0.0),
                     GateRule("latency_p95_ms", max_ratio=1.2),
                     GateRule("refusals", max_delta=0.05)))
PROD = run(1, holds_fact=0.80, cited=0.70, latency_p95_ms=1000.0, refusals=0.10)


async def test_a_candidate_within_every_margin_passes() -> None:
    cand = run(2, holds_fact=0.79, cited=0.70, latency_p95_ms=1200.0, refusals=0.15)
    d = await check_promotion(Runs(PROD, cand), "acme", "m", 2, 1, POLICY)
    assert d.allowed, d.reason
    assert d.details["holds_fact.limit"] == pytest.approx(0.78)
    assert d.details["latency_p95_ms.limit"] == pytest.approx(1200.0)
    assert (d.candidate_run, d.production_run, d.dataset) == (cand.id, PROD.id, "set")


@pytest.mark.parametrize(("metric", "value"), [
    ("holds_fact", 0.77), ("cited", 0.69), ("latency_p95_ms", 1201.0), ("refusals", 0.16)])
async def test_one_metric_past_its_margin_refuses(metric: str, value: float) -> None:
    totals = {"holds_fact": 0.80, "cited": 0.70, "latency_p95_ms": 1000.0, "refusals": 0.10}
    totals[metric] = value
    d = await check_promotion(Runs(PROD, run(2, **totals)), "acme", "m", 2, 1, POLICY)
    assert not d.allowed
    assert d.details[f"{metric}.passed"] == 0.0
    assert f"{metric} {value:.4g}" in d.reason and "FAILED" in d.reason
    assert sum(1 for c in d.checks if not c.passed) == 1


async def test_missing_runs_refuse_with_a_reason() -> None:
    d = await check_promotion(Runs(PROD), "acme", "m", 2, 1, POLICY)
    assert (d.allowed, d.reason) == (False, "m@2 has no evaluation run for this tenant")
    # Production's run must be on the candidate's set.
    d = await check_promotion(Runs(PROD, run(2, dataset="other", holds_fact=1.0)), "acme", "m",
                              2, 1, POLICY)
    assert (d.allowed, d.reason) == (False, "production m@1 has no evaluation run on other for "
                                            "this tenant")
    # Another tenant's runs do not count.
    d = await check_promotion(Runs(PROD, run(2, tenant="globex", holds_fact=1.0)), "acme", "m",
                              2, 1, POLICY)
    assert not d.allowed
    d = await check_promotion(Runs(PROD, run(2, holds_fact=1.0)), "acme", "m", 2, 1,
                              GatePolicy(POLICY.rules, dataset="tenant-set"))
    assert d.reason == "m@2 has no evaluation run on tenant-set for this tenant"


async def test_a_metric_the_candidate_lacks_fails_and_nothing_to_compare_passes() -> None:
    d = await check_promotion(Runs(PROD, run(2, cited=0.9, latency_p95_ms=1.0, refusals=0.0)),
                              "acme", "m", 2, 1, POLICY)
    assert not d.allowed and "holds_fact: the candidate's run has no value: FAILED" in d.reason
    assert "holds_fact.candidate" not in d.details
    first = await check_promotion(Runs(run(2, holds_fact=0.1)), "acme", "m", 2, None, POLICY)
    assert first.allowed and first.reason.startswith("no production version to compare with")


def test_rules_are_checked_and_policies_chosen_per_tenant() -> None:
    with pytest.raises(ValueError, match="one of min_delta"):
        GateRule("holds_fact")
    with pytest.raises(ValueError, match="not one of"):
        GateRule("accuracy", min_delta=0.0)
    strict = GatePolicy((GateRule("cited", min_delta=0.1),))
    policies = GatePolicies(tenants={"acme": strict})
    assert policies.for_tenant("acme") is strict
    assert policies.for_tenant("globex").rules[0].metric == "holds_fact"


def test_gate_settings_come_from_the_environment_and_a_bad_rule_fails_at_start_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_registry.bootstrap import gate_policies
    from llmops_registry.settings import Settings

    monkeypatch.setenv("LLMOPS_REGISTRY_GATE", json.dumps({"tenants": {"acme": {
        "rules": [{"metric": "cited", "max_delta": 0.1}], "dataset": "ds-1"}}}))
    policies = gate_policies(Settings())
    assert policies.for_tenant("acme") == GatePolicy((GateRule("cited", max_delta=0.1),), "ds-1")
    assert [r.metric for r in policies.for_tenant("globex").rules] == \
        ["holds_fact", "cited", "latency_p95_ms"]
    monkeypatch.setenv("LLMOPS_REGISTRY_GATE", json.dumps({"default": {
        "rules": [{"metric": "accuracy", "min_delta": 0}]}}))
    with pytest.raises(ValueError, match="LLMOPS_REGISTRY_GATE: gate metric 'accuracy'"):
        gate_policies(Settings())


async def test_the_policy_may_be_per_tenant_or_left_to_the_defaults() -> None:
    """How the rollout's canary calls it: policy None (the default rules) or every tenant's."""
    cand = run(2, holds_fact=0.79, cited=0.70, latency_p95_ms=1000.0, refusals=0.1)
    default = await check_promotion(Runs(PROD, cand), "acme", "m", 2, 1, None)
    assert not default.allowed and default.details["holds_fact.limit"] == pytest.approx(0.80)
    lenient = GatePolicies(tenants={"acme": POLICY})
    per_tenant = await check_promotion(Runs(PROD, cand), "acme", "m", 2, 1, lenient)
    assert per_tenant.allowed, per_tenant.reason
