"""An automatic rollback decided from observed metrics, through every real hop: inference
publishes InferenceCompleted on a Kafka topic of this run, observability's writer stores it in
chDB, the registry's canary controller reads `rollout.version_metrics` over observability's
gRPC (ObservabilityMetrics, platform admin key) and rolls the faulty candidate back, and the
alias event reaches inference. Stand-ins: retrieval, prompts, safety and the generation
backend (adapter `broken` fails to load)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops.registry.v1 import registry_pb2, registry_pb2_grpc, rollout_pb2, rollout_pb2_grpc
from llmops_inference.adapters.canary import CanaryResolver
from llmops_inference.adapters.registry import RegistryClient
from llmops_inference.api import events as inference_events
from llmops_inference.api.completion import BusCompletionSink
from llmops_inference.api.grpc import ROLES, SERVICE_FULL_NAME, InferenceServicer
from llmops_inference.domain.cache import AnswerCache
from llmops_inference.domain.feedback import FeedbackService
from llmops_inference.domain.model import (
    Generation,
    ModelRef,
    Passage,
    RenderedPrompt,
    SafetyResult,
    Verdict,
)
from llmops_inference.domain.pipeline import AnswerService, Limits
from llmops_inference.settings import Settings as InferenceSettings
from llmops_kit import events
from llmops_kit.errors import Unavailable
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.key_resolver import build_resolver
from llmops_kit.settings import DEV_ADMIN_KEY, KafkaSettings
from llmops_kit.testing import start_group_at_end
from llmops_observability.adapters.store import ClickHouseStore
from llmops_observability.api import events as observability_events
from llmops_observability.api.mapping import MappingOptions
from llmops_observability.bootstrap import build_grpc as build_observability_grpc
from llmops_observability.bootstrap import load_panels
from llmops_observability.settings import Settings as ObservabilitySettings
from llmops_observability.testing import fresh_client
from llmops_registry.adapters.observability_metrics import ObservabilityMetrics
from llmops_registry.api.events import RegistryTopics
from llmops_registry.bootstrap import build_grpc, build_registry
from llmops_registry.domain.canary_controller import CanaryController
from llmops_registry.ports_rollout import GateResult
from llmops_registry.settings import Settings as RegistrySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MODEL = "smollm2-135m-instruct"
KEY = (("x-api-key", "key-acme"),)


class Allow:
    async def check(self, tenant: str, name: str, candidate: int,
                    production: int | None) -> GateResult:
        return GateResult(True, "stand-in gate")


class Rest:
    """Retrieval, prompts, safety and generation stand-ins."""

    async def embed(self, question: str) -> list[float]:
        return [1.0]

    async def search(self, question: str, vector: Sequence[float], top_k: int) -> list[Passage]:
        return []

    async def render(self, name: str, label: str, question: str, passages: Sequence[Passage]
                     ) -> RenderedPrompt:
        return RenderedPrompt(name, 1, "", question)

    async def check(self, text: str, direction: str) -> SafetyResult:
        return SafetyResult(Verdict.ALLOW, text)

    async def redact(self, text: str) -> str:
        return text

    async def prepare(self, model: ModelRef) -> None:
        if model.adapter_id == "broken":
            raise Unavailable("GENERATION_UNAVAILABLE", "adapter failed to load")

    async def generate(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                       temperature: float | None, seed: int | None) -> Generation:
        return Generation(f"answer from {model.label}", 5, 4, "stop")

    async def stream(self, *args: Any) -> AsyncIterator[str | Generation]:
        raise AssertionError("not streamed here")
        yield ""


async def test_observed_errors_roll_the_candidate_back(kafka: KafkaSettings,
                                                       tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:10]
    base = f"llmops.test-{run}"
    reg_topics = RegistryTopics(
        events.EventType(f"{base}.registry.mvc.v1", registry_pb2.ModelVersionCreated),
        events.EventType(f"{base}.registry.alias.v1", registry_pb2.ModelAliasChanged),
        events.EventType(f"{base}.registry.pvc.v1", registry_pb2.PromptVersionCreated),
        events.EventType(f"{base}.registry.plc.v1", registry_pb2.PromptLabelChanged))
    completed = events.EventType(f"{base}.inference.completed.v1",
                                 inference_pb2.InferenceCompleted)
    await ensure_topics(kafka, [*reg_topics.all(), completed.topic], partitions=1)
    auth = f"sqlite:///{tmp_path}/auth.db"
    keys = "key-acme=acme:maintainer"
    closers: list[Any] = []
    try:
        # Observability: its writer on this run's InferenceCompleted topic, and its gRPC API.
        ch = fresh_client("canary")
        obus = EventBus(kafka, client_id=f"obs-{run}")
        names = observability_events.register(
            obus, observability_events.Writer(ClickHouseStore(ch), MappingOptions()),
            f"observability-{run}", 500, 100, (completed,))
        await ensure_topics(kafka, names)
        await obus.start()
        closers.append(obus.stop)
        oserver = build_observability_grpc(
            ObservabilitySettings(grpc_host="127.0.0.1", grpc_port=0, auth_database_url=auth),
            load_panels(), ch)
        oport = await oserver.start()
        closers.append(lambda: oserver.stop(0))
        # The registry, its relay and a controller reading observability.
        rsettings = RegistrySettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka,
                                     api_keys=keys, database_url=f"sqlite:///{tmp_path}/r.db",
                                     auth_database_url=auth, outbox_interval_seconds=0.5)
        rbus = EventBus(kafka, client_id=f"registry-{run}")
        await rbus.start()
        closers.append(rbus.stop)
        registry = await build_registry(rsettings, rbus, reg_topics, gate=Allow())
        rserver = build_grpc(rsettings, registry)
        rport = await rserver.start()
        closers.append(lambda: rserver.stop(0))
        registry.relay.start()
        closers.append(registry.relay.stop)
        metrics = ObservabilityMetrics(f"127.0.0.1:{oport}", DEV_ADMIN_KEY, 10.0)
        closers.append(metrics.close)
        assert registry.rollouts is not None
        controller = CanaryController(registry.rollouts, metrics, registry.rollouts.store,  # type: ignore[arg-type]
                                      tick_seconds=0.3)
        # Inference publishing InferenceCompleted, following alias events.
        isettings = InferenceSettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka,
                                      api_keys=keys, auth_database_url=auth)
        ibus = EventBus(kafka, client_id=f"inference-{run}")
        rest = Rest()
        sink = BusCompletionSink(ibus, rest, None, event_type=completed)
        models = CanaryResolver(RegistryClient(f"127.0.0.1:{rport}", 10.0, MODEL,
                                               ttl_seconds=600), ttl_seconds=600)
        closers.append(models.close)
        service = AnswerService(rest, rest, models, rest, rest, sink, AnswerCache(10, 60),
                                Limits())
        group = f"inference-{run}"
        await start_group_at_end(kafka, group, [reg_topics.model_alias_changed.topic])
        inference_events.register(ibus, inference_events.AliasHandlers(models), group,
                                  source=reg_topics.model_alias_changed)
        await ibus.start()
        closers.append(ibus.stop)
        closers.append(sink.drain)
        iserver = GrpcServer("127.0.0.1", 0, build_resolver(isettings))
        iserver.add(inference_pb2_grpc.add_InferenceServiceServicer_to_server,
                    InferenceServicer(service, isettings, FeedbackService(rest, None)),  # type: ignore[arg-type]
                    [SERVICE_FULL_NAME], ROLES)
        iport = await iserver.start()
        closers.append(lambda: iserver.stop(0))

        rchannel = grpc.aio.insecure_channel(f"127.0.0.1:{rport}")
        ichannel = grpc.aio.insecure_channel(f"127.0.0.1:{iport}")
        closers += [rchannel.close, ichannel.close]
        registry_stub = registry_pb2_grpc.ModelRegistryServiceStub(rchannel)
        rollout = rollout_pb2_grpc.RolloutServiceStub(rchannel)
        inference = inference_pb2_grpc.InferenceServiceStub(ichannel)
        broken = await registry_stub.RegisterModelVersion(registry_pb2.RegisterModelVersionRequest(
            name=MODEL, artifact_uri="file:///adapters/broken", format="peft-lora",
            metadata={"adapter_id": "broken"}), metadata=KEY)
        await rollout.StartCanary(rollout_pb2.StartCanaryRequest(
            name=MODEL, candidate_version=broken.version, share=50, interval_seconds=2,
            threshold=2, thresholds=rollout_pb2.CanaryThresholds(min_requests=5)), metadata=KEY)
        controller.start()
        closers.append(controller.stop)

        started = time.monotonic()
        state = rollout_pb2.CANARY_STATE_PROGRESSING
        while state == rollout_pb2.CANARY_STATE_PROGRESSING:
            assert time.monotonic() - started < 90, "no rollback from the observed metrics"
            await asyncio.gather(*(inference.Generate(inference_pb2.GenerateRequest(
                question=uuid.uuid4().hex, rag=False, no_cache=True), metadata=KEY)
                for _ in range(5)), return_exceptions=True)
            await asyncio.sleep(0.2)
            state = (await rollout.GetCanary(rollout_pb2.GetCanaryRequest(name=MODEL),
                                             metadata=KEY)).state
        took = time.monotonic() - started
        canary = await rollout.GetCanary(rollout_pb2.GetCanaryRequest(name=MODEL), metadata=KEY)
        assert canary.state == rollout_pb2.CANARY_STATE_ROLLED_BACK
        assert "error rate" in canary.reason and canary.failed_checks == 2
        # What observability saw: failures of the candidate only.
        rows = ch.query("SELECT response_model, countIf(error != '') FROM answers FINAL "
                        "WHERE tenant = 'acme' GROUP BY response_model").result_rows
        failed = {model: int(n) for model, n in rows}
        assert failed[f"{MODEL}@1"] == 0 and failed[f"{MODEL}@{broken.version}"] > 0
        print(f"rolled back from observed metrics {took:.1f}s after the canary started")
    finally:
        for close in reversed(closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result
