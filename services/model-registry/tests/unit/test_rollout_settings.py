"""Rollout settings: nested env, the default thresholds they give, the controller switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_kit.kafka import EventBus
from llmops_kit.settings import KafkaSettings
from llmops_registry.adapters.promotion_gate import NoGate
from llmops_registry.bootstrap import build_controller, build_registry, rollout_defaults
from llmops_registry.domain.canary import Thresholds
from llmops_registry.settings import Settings

pytestmark = pytest.mark.unit


def test_nested_env_sets_the_rollout_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_REGISTRY_ROLLOUT__MIN_REQUESTS", "50")
    monkeypatch.setenv("LLMOPS_REGISTRY_ROLLOUT__MAX_LATENCY_RATIO", "1.2")
    monkeypatch.setenv("LLMOPS_REGISTRY_ROLLOUT__TICK_SECONDS", "0.5")
    s = Settings()
    assert s.rollout.tick_seconds == 0.5
    assert rollout_defaults(s) == Thresholds(0.05, 1.2, 0.05, 0.1, 0.1, 50)


def test_bad_rollout_settings_fail_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="min_requests"):
        Settings(rollout={"min_requests": 0})


async def test_the_controller_can_be_switched_off(tmp_path: Path) -> None:
    s = Settings(database_url=f"sqlite:///{tmp_path}/r.db", seed_model={"enabled": False},
                 rollout={"controller_enabled": False})
    reg = await build_registry(s, EventBus(KafkaSettings(bootstrap_servers="127.0.0.1:1"), "test"),
                               gate=NoGate())
    try:
        assert reg.rollouts is not None and isinstance(reg.rollouts.gate, NoGate)
        assert build_controller(s, reg) is None
        on = Settings(database_url=s.database_url, seed_model={"enabled": False},
                      rollout={"tick_seconds": 0.25})
        controller = build_controller(on, reg)
        assert controller is not None and controller.controller.tick == 0.25
        await controller.metrics_close()
    finally:
        reg.engine.dispose()


async def test_the_canary_gate_is_the_evaluation_gate_over_the_registrys_runs(
        tmp_path: Path) -> None:
    from llmops_registry.adapters.promotion_gate import EvaluationGate
    from llmops_registry.domain.gate import check_promotion

    s = Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", seed_model={"enabled": False},
                 gate={"tenants": {"acme": {"rules": [{"metric": "holds_fact", "min_delta": -0.1}]}}})
    reg = await build_registry(s, EventBus(KafkaSettings(bootstrap_servers="127.0.0.1:1"), "test"))
    try:
        assert reg.rollouts is not None
        gate = reg.rollouts.gate
        assert isinstance(gate, EvaluationGate) and gate.evaluations is reg.evaluations
        assert gate.check_promotion is check_promotion
        # No runs recorded: the gate refuses, naming what is missing.
        verdict = await gate.check("acme", "m", 2, 1)
        assert verdict.allowed is False and verdict.reason
    finally:
        reg.engine.dispose()
