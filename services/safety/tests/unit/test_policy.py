"""Policies: defaults, JSON overrides per tenant and direction, validation, the verdict."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmops_pii import PII_CATEGORIES, Finding
from llmops_safety.domain.model import Analysis, Direction, Verdict
from llmops_safety.domain.policy import DirectionPolicy, TenantPolicy, decide
from llmops_safety.settings import PoliciesSettings, Settings

pytestmark = pytest.mark.unit


def analysis(tox: float = 0.0, inj: float = 0.0, pii: tuple[str, ...] = ()) -> Analysis:
    findings = tuple(Finding(i, i + 1, c) for i, c in enumerate(pii))
    return Analysis(findings, {"toxicity": tox, "prompt_injection": inj}, "fake")


def test_defaults() -> None:
    policy = TenantPolicy()
    assert policy.input.toxicity_block == 0.8 and policy.input.injection_block == 0.7
    assert policy.input.redact == frozenset(PII_CATEGORIES) and not policy.input.block
    assert policy.output.injection_block is None
    assert policy.output.block == {"pii.api_key", "pii.secret"}
    assert policy.for_direction(Direction.OUTPUT) is policy.output


@pytest.mark.parametrize(("a", "verdict", "reasons"), [
    (analysis(), Verdict.ALLOW, ()),
    (analysis(tox=0.79), Verdict.ALLOW, ()),
    (analysis(tox=0.8), Verdict.BLOCK, ("toxicity 0.80 >= 0.80",)),
    (analysis(inj=0.9), Verdict.BLOCK, ("prompt_injection 0.90 >= 0.70",)),
    (analysis(pii=("pii.email",)), Verdict.REDACT, ("pii.email redacted",)),
    (analysis(inj=0.95, pii=("pii.phone",)), Verdict.BLOCK,
     ("prompt_injection 0.95 >= 0.70", "pii.phone redacted")),
])
def test_decide_input(a: Analysis, verdict: Verdict, reasons: tuple[str, ...]) -> None:
    assert decide(a, TenantPolicy().input) == (verdict, reasons)


def test_decide_output_blocks_secrets_and_ignores_injection() -> None:
    out = TenantPolicy().output
    assert decide(analysis(pii=("pii.secret", "pii.email")), out) == (
        Verdict.BLOCK, ("pii.secret blocked", "pii.email redacted"))
    assert decide(analysis(inj=1.0), out) == (Verdict.ALLOW, ())


def test_overrides_merge_level_by_level() -> None:
    policies = PoliciesSettings.model_validate({
        "default": {"output": {"toxicity_block": 0.6}},
        "tenants": {
            "acme": {"input": {"injection_block": 0.5, "block": ["pii.kr_rrn"]}},
            "lenient": {"input": {"toxicity_block": None, "redact": []}},
        },
    })
    book = policies.book()
    acme, source = book.for_tenant("acme")
    assert source == "tenant"
    assert acme.input.injection_block == 0.5 and acme.input.toxicity_block == 0.8
    # Moving a category to `block` takes it out of `redact`.
    assert acme.input.block == {"pii.kr_rrn"} and "pii.kr_rrn" not in acme.input.redact
    assert acme.output.toxicity_block == 0.6  # inherited from the default override
    lenient, _ = book.for_tenant("lenient")
    assert lenient.input.toxicity_block is None and lenient.input.redact == frozenset()
    other, source = book.for_tenant("globex")
    assert source == "default" and other.output.toxicity_block == 0.6
    assert book.for_tenant(None)[1] == "default"


def test_policies_from_env_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_SAFETY_POLICIES",
                       '{"tenants": {"acme": {"output": {"block": ["pii.*"]}}}}')
    monkeypatch.setenv("LLMOPS_SAFETY_GRPC_PORT", "50999")
    settings = Settings()
    assert settings.grpc_port == 50999
    acme, _ = settings.policies.book().for_tenant("acme")
    assert acme.output.block == frozenset(PII_CATEGORIES) and acme.output.redact == frozenset()


@pytest.mark.parametrize(("raw", "message"), [
    ({"tenants": {"a": {"input": {"redact": ["pii.nope"]}}}}, "unknown PII categories"),
    ({"tenants": {"a": {"input": {"toxicity_block": 1.5}}}}, "less than or equal to 1"),
    ({"tenants": {"a": {"input": {"redact": ["pii.email"], "block": ["pii.email"]}}}},
     "both redacted and blocked"),
    ({"tenants": {"a": {"inputs": {}}}}, "Extra inputs are not permitted"),
])
def test_bad_policies_fail_at_start_up(raw: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PoliciesSettings.model_validate(raw)


def test_direction_policy_rejects_unknown_categories() -> None:
    with pytest.raises(ValueError, match="unknown"):
        DirectionPolicy(redact=frozenset({"pii.nope"}))


def test_detoxify_settings_need_both_paths(tmp_path) -> None:
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"x")
    with pytest.raises(ValidationError, match="set together"):
        Settings(detoxify={"checkpoint": ckpt})
    with pytest.raises(ValidationError, match=r"no config\.json"):
        Settings(detoxify={"checkpoint": ckpt, "config_dir": tmp_path})
    (tmp_path / "config.json").write_text("{}")
    assert Settings(detoxify={"checkpoint": ckpt, "config_dir": tmp_path}).detoxify.configured
    assert not Settings().detoxify.configured


def test_detoxify_paths_from_env(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = tmp_path / "toxic.ckpt"
    ckpt.write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("LLMOPS_SAFETY_DETOXIFY__CHECKPOINT", str(ckpt))
    monkeypatch.setenv("LLMOPS_SAFETY_DETOXIFY__CONFIG_DIR", str(tmp_path))
    settings = Settings()
    assert (settings.detoxify.checkpoint, settings.detoxify.config_dir) == (ckpt, tmp_path)
