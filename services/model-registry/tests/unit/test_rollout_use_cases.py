"""Rollout use cases and the canary controller on a real SQLite file, with fake metrics, a
stand-in promotion gate (`check_promotion`, interface 3) and a recording event publisher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmops_kit.errors import DomainError
from llmops_registry.adapters.memory_audit import MemoryAuditLog
from llmops_registry.adapters.promotion_gate import EvaluationGate, NoGate
from llmops_registry.adapters.sql_rollout import SqlRolloutStore
from llmops_registry.adapters.sql_schema import create_schema, make_engine
from llmops_registry.adapters.sql_store import SqlRegistryStore
from llmops_registry.domain.audit import Auditor
from llmops_registry.domain.canary import CanarySpec, CanaryState, Move, VersionMetrics
from llmops_registry.domain.canary_controller import CanaryController
from llmops_registry.domain.gate import GateDecision
from llmops_registry.domain.model import Actor, Lineage, ModelAliasChangedEvent, OutboxEntry
from llmops_registry.domain.models import ModelRegistry, Policy
from llmops_registry.domain.outbox import OutboxRelay
from llmops_registry.domain.rollout import Rollouts
from llmops_registry.ports_rollout import GateResult

pytestmark = pytest.mark.unit

ACME = Actor("acme", "t-1", "key-acme")
ADMIN = Actor("platform", "t-0", "key-admin")
HEALTHY = VersionMetrics(requests=50, errors=0, p95_latency_ms=100.0, groundedness=0.8)
BROKEN = VersionMetrics(requests=50, errors=25, p95_latency_ms=100.0, groundedness=0.8)


class Publisher:
    def __init__(self) -> None:
        self.published: list[OutboxEntry] = []

    async def publish(self, entry: OutboxEntry) -> None:
        self.published.append(entry)


class FakeMetrics:
    """Per version, what the next window reports; records the windows asked for."""

    def __init__(self) -> None:
        self.by_version: dict[int, VersionMetrics] = {}
        self.windows: list[tuple[str, str, datetime, datetime]] = []

    async def window(self, tenant: str, name: str, since: datetime,
                     until: datetime) -> dict[int, VersionMetrics]:
        self.windows.append((tenant, name, since, until))
        return dict(self.by_version)


class Gate:
    def __init__(self, allowed: bool = True) -> None:
        self.allowed = allowed
        self.calls: list[tuple[str, str, int, int | None]] = []

    async def check(self, tenant: str, name: str, candidate: int,
                    production: int | None) -> GateResult:
        self.calls.append((tenant, name, candidate, production))
        return GateResult(self.allowed, "eval ok" if self.allowed else "worse on eval set")


class Env:
    def __init__(self, tmp: Path) -> None:
        self.engine = make_engine(f"sqlite:///{tmp}/registry.db")
        create_schema(self.engine)
        self.store = SqlRegistryStore(self.engine)
        self.publisher = Publisher()
        self.relay = OutboxRelay(self.store, self.publisher, flush_timeout=1.0)
        self.audit = MemoryAuditLog()
        self.models = ModelRegistry(self.store, self.relay, Policy(), Auditor(self.audit))
        self.gate = Gate()
        self.canaries = SqlRolloutStore(self.engine)
        self.rollouts = Rollouts(self.canaries, self.store, self.relay, Auditor(self.audit),
                                 self.gate)
        self.metrics = FakeMetrics()

    async def model(self, versions: int = 2) -> None:
        for _ in range(versions):
            new = self.models.validate_new("m", "file:///m", "base", "hf", {}, Lineage())
            await self.models.register(ADMIN, new, shared=True)
        await self.models.set_alias(ADMIN, "m", "production", 1, "first", shared=True)

    def controller(self, holder: str = "a") -> CanaryController:
        return CanaryController(self.rollouts, self.metrics, self.canaries, holder=holder,
                                lease_seconds=30)

    async def production(self) -> int:
        return (await self.store.get_model_version("m", alias="production",
                                                   tenant="acme")).version


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path)
    await e.model()
    yield e
    e.engine.dispose()


SPEC = CanarySpec(candidate=2, share=10, step=45, max_share=100, interval_seconds=1,
                  threshold=2)


async def reason_of(coro: object) -> str:
    with pytest.raises(DomainError) as info:
        await coro  # type: ignore[misc]
    return info.value.reason


async def test_start_needs_the_gate_and_points_the_canary_alias(env: Env) -> None:
    env.gate.allowed = False
    assert await reason_of(env.rollouts.start(ACME, "m", SPEC)) == "GATE_REFUSED"
    assert env.gate.calls == [("acme", "m", 2, 1)]
    assert await reason_of(env.rollouts.start(ACME, "m", SPEC, override_gate=True)) \
        == "REASON_REQUIRED"
    canary = await env.rollouts.start(ACME, "m", SPEC, "hotfix", override_gate=True)
    assert (canary.production, canary.candidate, canary.share) == (1, 2, 10)
    assert canary.state is CanaryState.PROGRESSING and canary.last_good == 1
    assert (await env.store.get_model_version("m", alias="canary", tenant="acme")).version == 2
    history = (await env.rollouts.history("acme", "m")).items
    assert history[0].pointer == "canary" and history[0].to_version == 2
    assert "gate overridden (worse on eval set)" in history[0].reason and "hotfix" in history[0].reason
    assert [e.action for e in env.audit.entries][-1] == "canary.start"
    # Another tenant is untouched: no canary, its production is the shared one.
    assert await reason_of(env.rollouts.get("globex", "m")) == "CANARY_NOT_FOUND"


async def test_bad_specs_are_refused_with_reasons(env: Env) -> None:
    from dataclasses import replace

    assert await reason_of(env.rollouts.start(ACME, "m", replace(SPEC, share=0))) == "BAD_SHARE"
    assert await reason_of(env.rollouts.start(ACME, "m", replace(SPEC, step=101))) == "BAD_STEP"
    assert await reason_of(env.rollouts.start(ACME, "m", replace(SPEC, interval_seconds=0))) \
        == "BAD_INTERVAL"
    assert await reason_of(env.rollouts.start(ACME, "m", replace(SPEC, candidate=1))) \
        == "SAME_VERSION"
    assert await reason_of(env.rollouts.start(ACME, "m", replace(SPEC, candidate=9))) \
        == "VERSION_NOT_FOUND"
    await env.rollouts.start(ACME, "m", SPEC)
    assert await reason_of(env.rollouts.start(ACME, "m", SPEC)) == "CANARY_IN_PROGRESS"


async def test_controller_promotes_through_the_steps(env: Env) -> None:
    await env.rollouts.start(ACME, "m", SPEC)
    env.metrics.by_version = {1: HEALTHY, 2: HEALTHY}
    ctl = env.controller()
    t0 = datetime.now(UTC)
    moves, shares = [], []
    for i in range(1, 5):
        steps = await ctl.run_once(t0 + timedelta(seconds=2 * i))
        moves += [s.move for s in steps]
        shares += [s.canary.share for s in steps]
    # 10 -> 55 -> 100 (max_share), then a passing check at max_share promotes; then nothing.
    assert moves == [Move.ADVANCE, Move.ADVANCE, Move.PROMOTE]
    assert shares == [55, 100, 100]
    canary = await env.rollouts.get("acme", "m")
    assert canary.state is CanaryState.PROMOTED
    assert await env.production() == 2
    # The shared production (other tenants) did not move.
    assert (await env.store.get_model_version("m", alias="production")).version == 1
    reasons = [c.reason for c in (await env.rollouts.history("acme", "m", 50)).items]
    assert any(r.startswith("share 10% -> 55%") for r in reasons)
    assert any(r.startswith("promoted v2 at 100%") for r in reasons)
    # Every step went out as an alias change (what inference replicas follow).
    changes = [e.event for e in env.publisher.published
               if isinstance(e.event, ModelAliasChangedEvent)]
    assert [(c.change.pointer, c.change.from_version, c.change.to_version)
            for c in changes[-5:]] == [("canary", 0, 2), ("canary", 2, 2), ("canary", 2, 2),
                                        ("production", 0, 2), ("canary", 2, 0)]
    # Windows are consecutive: each starts where the previous verdict was made.
    assert env.metrics.windows[1][2] == env.metrics.windows[0][3]


async def test_threshold_failed_checks_roll_back_at_once(env: Env) -> None:
    await env.rollouts.start(ACME, "m", SPEC)
    env.metrics.by_version = {1: HEALTHY, 2: BROKEN}
    ctl = env.controller()
    t0 = datetime.now(UTC)
    first = await ctl.run_once(t0 + timedelta(seconds=2))
    assert [s.move for s in first] == [Move.HOLD]
    second = await ctl.run_once(t0 + timedelta(seconds=4))
    assert [s.move for s in second] == [Move.ROLLBACK]
    canary = await env.rollouts.get("acme", "m")
    assert canary.state is CanaryState.ROLLED_BACK and canary.share == 0
    assert canary.failed_checks == 2
    assert await env.production() == 1
    assert await reason_of(env.store.get_model_version("m", alias="canary", tenant="acme")) \
        == "ALIAS_NOT_FOUND"
    reasons = [c.reason for c in (await env.rollouts.history("acme", "m", 50)).items]
    assert any("failed check 1 of 2" in r and "error rate 0.500" in r for r in reasons)
    assert any("rolled back to v1 after 2 failed checks" in r for r in reasons)
    assert "canary.step" in [e.action for e in env.audit.entries]
    # Ended: the controller leaves it alone.
    assert await ctl.run_once(t0 + timedelta(seconds=10)) == []


async def test_no_verdict_without_enough_requests(env: Env) -> None:
    await env.rollouts.start(ACME, "m", SPEC)
    env.metrics.by_version = {1: HEALTHY, 2: VersionMetrics(requests=2, errors=2)}
    steps = await env.controller().run_once(datetime.now(UTC) + timedelta(seconds=2))
    assert [s.move for s in steps] == [Move.WAIT]
    canary = await env.rollouts.get("acme", "m")
    assert (canary.share, canary.failed_checks) == (10, 0)
    assert "2 of 20" in canary.reason


async def test_only_the_lease_holder_analyses(env: Env) -> None:
    await env.rollouts.start(ACME, "m", SPEC)
    env.metrics.by_version = {1: HEALTHY, 2: HEALTHY}
    at = datetime.now(UTC) + timedelta(seconds=2)
    assert len(await env.controller("a").run_once(at)) == 1
    assert await env.controller("b").run_once(at + timedelta(seconds=2)) == []
    assert len(env.metrics.windows) == 1


async def test_rollback_during_canary_after_promotion_and_from_history(env: Env) -> None:
    await env.rollouts.start(ACME, "m", SPEC)
    before, after, canary = await env.rollouts.rollback(ACME, "m", "bad answers")
    assert (before, after) == (1, 1) and canary is not None
    assert canary.state is CanaryState.ROLLED_BACK and canary.share == 0
    # Promote a second canary by hand (a full-share pass), then roll it back in one call.
    await env.rollouts.start(ACME, "m", CanarySpec(candidate=2, share=100, max_share=100,
                                                   interval_seconds=1))
    env.metrics.by_version = {2: HEALTHY}
    await env.controller().run_once(datetime.now(UTC) + timedelta(seconds=2))
    assert await env.production() == 2
    before, after, canary = await env.rollouts.rollback(ACME, "m")
    assert (before, after) == (2, 1) and await env.production() == 1
    assert canary is not None and canary.state is CanaryState.ROLLED_BACK
    # Without a canary: the tenant's own alias goes back where its last change came from.
    await env.models.set_alias(ACME, "m", "production", 2, "manual")
    await env.rollouts.start(ACME, "m", CanarySpec(candidate=1, interval_seconds=1))
    await env.rollouts.abort(ACME, "m", "not now")
    assert (await env.rollouts.get("acme", "m")).state is CanaryState.ABORTED
    before, after, canary = await env.rollouts.rollback(ACME, "m")
    assert (before, after, canary) == (2, 1, None)
    assert await reason_of(env.rollouts.rollback(ACME, "m")) == "NOTHING_TO_ROLL_BACK"
    assert [e.action for e in env.audit.entries].count("model.rollback") == 3


async def test_abort_needs_a_progressing_canary(env: Env) -> None:
    assert await reason_of(env.rollouts.abort(ACME, "m")) == "CANARY_NOT_FOUND"
    await env.rollouts.start(ACME, "m", SPEC)
    aborted = await env.rollouts.abort(ACME, "m", "stop")
    assert aborted.state is CanaryState.ABORTED and "aborted at 10%: stop" in aborted.reason
    assert await reason_of(env.rollouts.abort(ACME, "m")) == "CANARY_NOT_PROGRESSING"


async def test_evaluation_gate_calls_the_check_it_is_given() -> None:
    calls = []

    async def check_promotion(evaluations: object, tenant: str, model: str, candidate: int,
                              production: int | None, policy: object) -> GateDecision:
        calls.append((evaluations, tenant, model, candidate, production, policy))
        return GateDecision(candidate != 3, "groundedness -0.02", {"d": -0.02})

    gate = EvaluationGate("runs", "policy", check=check_promotion)
    ok = await gate.check("acme", "m", 2, 1)
    assert ok == GateResult(True, "groundedness -0.02", {"d": -0.02})
    assert (await gate.check("acme", "m", 3, 1)).allowed is False
    assert calls[0] == ("runs", "acme", "m", 2, 1, "policy")
    assert (await NoGate().check("acme", "m", 2, 1)).allowed is False
