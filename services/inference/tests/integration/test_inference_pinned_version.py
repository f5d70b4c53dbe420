"""A pinned model version (GenerateRequest.model_version) resolved through a real registry over
gRPC (SQLite, real Kafka for its events): exactly that version, for a tenant that may use it
(its own or a shared one); NOT_FOUND for another tenant's or an unknown one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from llmops.inference.v1 import inference_pb2
from llmops.registry.v1 import evaluation_pb2, registry_pb2, registry_pb2_grpc
from llmops_inference.adapters.registry import RegistryClient
from llmops_inference.api.grpc import to_question
from llmops_inference.settings import Settings as InferenceSettings
from llmops_kit.context import bound
from llmops_kit.errors import NotFound
from llmops_kit.events import EventType
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_registry.api.events import RegistryTopics
from llmops_registry.bootstrap import build_grpc, build_registry
from llmops_registry.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEYS = "k-acme=acme:maintainer,k-globex=globex:maintainer,k-admin=platform:admin"
MODEL = "smollm2-135m-instruct"


def topics() -> RegistryTopics:
    base = f"llmops.test-{uuid.uuid4().hex[:10]}.registry"
    return RegistryTopics(
        EventType(f"{base}.mvc.v1", registry_pb2.ModelVersionCreated),
        EventType(f"{base}.mac.v1", registry_pb2.ModelAliasChanged),
        EventType(f"{base}.pvc.v1", registry_pb2.PromptVersionCreated),
        EventType(f"{base}.plc.v1", registry_pb2.PromptLabelChanged),
        EventType(f"{base}.ec.v1", evaluation_pb2.EvaluationCompleted))


@pytest.fixture
async def registry_address(tmp_path: Path, kafka: KafkaSettings) -> AsyncIterator[str]:
    settings = Settings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka, api_keys=KEYS,
                        database_url=f"sqlite:///{tmp_path}/registry.db",
                        auth_database_url=f"sqlite:///{tmp_path}/platform.db")
    t = topics()
    await ensure_topics(kafka, t.all(), partitions=1)
    bus = EventBus(kafka, client_id="inference-pin-test")
    await bus.start()
    registry = await build_registry(settings, bus, t)
    server = build_grpc(settings, registry)
    port = await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
        await bus.stop()
        registry.engine.dispose()


async def test_a_pinned_version_resolves_only_for_tenants_that_may_use_it(
        registry_address: str) -> None:
    async with grpc.aio.insecure_channel(registry_address) as ch:
        stub = registry_pb2_grpc.ModelRegistryServiceStub(ch)
        # v2: acme's own full model; the shipped v1 is shared.
        await stub.RegisterModelVersion(registry_pb2.RegisterModelVersionRequest(
            name=MODEL, artifact_uri="file:///models/acme-ft", format="hf"),
            metadata=(("x-api-key", "k-acme"),))
    client = RegistryClient(registry_address, 5.0, MODEL)
    try:
        with bound("acme", None, "k-acme"):
            own = await client.resolve_version(2)
            shared = await client.resolve_version(1)
            production = await client.resolve("production")
        assert (own.label, own.full_model, own.adapter_id) == (f"{MODEL}@2", True, f"{MODEL}-v2")
        assert own.artifact_uri == "file:///models/acme-ft"
        assert (shared.label, shared.full_model) == (f"{MODEL}@1", False)
        assert production.label == f"{MODEL}@1"  # pinning moved no alias
        with bound("globex", None, "k-globex"), pytest.raises(NotFound) as other:
            await client.resolve_version(2)
        assert other.value.reason == "VERSION_NOT_FOUND"
        with bound("acme", None, "k-acme"), pytest.raises(NotFound) as unknown:
            await client.resolve_version(7)
        assert unknown.value.reason == "VERSION_NOT_FOUND"
    finally:
        await client.close()


def test_the_request_field_reaches_the_question() -> None:
    settings = InferenceSettings()
    with bound("acme", None, "k"):
        pinned = to_question(inference_pb2.GenerateRequest(question="q", model_version=3),
                             settings)
        plain = to_question(inference_pb2.GenerateRequest(question="q"), settings)
    assert (pinned.model_version, plain.model_version) == (3, 0)
