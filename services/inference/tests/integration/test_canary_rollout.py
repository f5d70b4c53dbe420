"""Canaries end to end over real sockets: the model registry (gRPC, SQLite, its outbox on a real
Kafka topic of this run, the canary controller) and the inference service (gRPC, its
per-request canary resolution against the registry, alias events from Kafka), and sticky
routing for requests that carry a session id.

Stand-ins: retrieval, prompts and safety (allow everything), the generation backend (a fault
switch: the adapter `broken` fails to load, as a candidate whose adapter path the generation
server cannot load would) and the controller's metrics port (computed from the answers
inference recorded, as observability's panel computes them from InferenceCompleted; the panel
itself is tested in services/observability). Each test uses its own tenant.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops.registry.v1 import registry_pb2, registry_pb2_grpc, rollout_pb2, rollout_pb2_grpc
from llmops_inference.adapters.canary import CanaryResolver
from llmops_inference.adapters.registry import RegistryClient
from llmops_inference.api import events as event_api
from llmops_inference.api.grpc import ROLES, SERVICE_FULL_NAME, InferenceServicer
from llmops_inference.domain.cache import AnswerCache
from llmops_inference.domain.feedback import FeedbackService
from llmops_inference.domain.model import (
    Answer,
    Generation,
    ModelRef,
    Passage,
    Question,
    RenderedPrompt,
    SafetyResult,
    Verdict,
)
from llmops_inference.domain.pipeline import AnswerService, Limits
from llmops_inference.settings import Settings as InferenceSettings
from llmops_kit import events
from llmops_kit.errors import Unavailable
from llmops_kit.grpc_server import GrpcServer, error_reason
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.key_resolver import build_resolver
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import start_group_at_end
from llmops_registry.api.events import RegistryTopics
from llmops_registry.bootstrap import Registry, build_grpc, build_registry
from llmops_registry.domain.canary import VersionMetrics
from llmops_registry.domain.canary_controller import CanaryController
from llmops_registry.ports_rollout import GateResult
from llmops_registry.settings import Settings as RegistrySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MODEL = "smollm2-135m-instruct"
TENANTS = ("acme", "globex", "initech")
KEYS = ",".join(f"key-{t}={t}:maintainer" for t in TENANTS)


def md(tenant: str) -> tuple[tuple[str, str], ...]:
    return (("x-api-key", f"key-{tenant}"),)


class AllowGate:
    """Stands in for the evaluation gate (interface 3, check_promotion)."""

    async def check(self, tenant: str, name: str, candidate: int,
                    production: int | None) -> GateResult:
        return GateResult(True, "stand-in gate: evaluation not worse")


class Rest:
    """Retrieval, prompts and safety stand-ins."""

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


class Generation_:
    """The generation backend: adapter `broken` fails to load; streams can be held open."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.release.set()
        self.in_flight = 0

    async def prepare(self, model: ModelRef) -> None:
        if model.adapter_id == "broken":
            raise Unavailable("GENERATION_UNAVAILABLE", "adapter failed to load")

    async def generate(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                       temperature: float | None, seed: int | None) -> Generation:
        return Generation(f"answer from {model.label}", 5, 4, "stop")

    async def stream(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                     temperature: float | None, seed: int | None
                     ) -> AsyncIterator[str | Generation]:
        self.in_flight += 1
        try:
            yield "answer "
            await self.release.wait()
            yield f"from {model.label}."
            yield Generation(f"answer from {model.label}.", 5, 4, "stop")
        finally:
            self.in_flight -= 1


@dataclass
class Sink:
    answers: list[tuple[float, str, Answer]] = field(default_factory=list)

    def submit(self, question: Question, answer: Answer, streamed: bool) -> None:
        self.answers.append((time.time(), question.tenant, answer))


class SinkMetrics:
    """The controller's metrics port over what inference recorded (observability stand-in)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def window(self, tenant: str, name: str, since: datetime,
                     until: datetime) -> dict[int, VersionMetrics]:
        counts: dict[int, list[int]] = {}
        for at, t, a in self.sink.answers:
            if t != tenant or a.model is None or not since.timestamp() <= at < until.timestamp():
                continue
            c = counts.setdefault(a.model.version, [0, 0])
            c[0] += 1
            c[1] += bool(a.error)
        return {v: VersionMetrics(requests=n, errors=e, p95_latency_ms=10.0)
                for v, (n, e) in counts.items()}


@dataclass
class Rig:
    registry: Registry
    rollout: rollout_pb2_grpc.RolloutServiceStub
    models: registry_pb2_grpc.ModelRegistryServiceStub
    inference: inference_pb2_grpc.InferenceServiceStub
    generator: Generation_
    sink: Sink

    async def ask(self, tenant: str, n: int = 1, sessions: Sequence[str] = ()) -> list[str]:
        """The versions that served `n` concurrent requests (one per session if given)."""
        resps = await asyncio.gather(*(self.inference.Generate(
            inference_pb2.GenerateRequest(question=f"q {uuid.uuid4().hex}", rag=False,
                                          no_cache=True, session_id=s), metadata=md(tenant))
            for s in (list(sessions) or [""] * n)))
        return [r.model_version for r in resps]


@pytest.fixture(scope="module")
async def rig(kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[Rig]:
    tmp: Path = tmp_path_factory.mktemp("canary")
    run = uuid.uuid4().hex[:10]
    base = f"llmops.test-{run}.registry"
    topics = RegistryTopics(
        events.EventType(f"{base}.model-version-created.v1", registry_pb2.ModelVersionCreated),
        events.EventType(f"{base}.alias-changed.v1", registry_pb2.ModelAliasChanged),
        events.EventType(f"{base}.prompt-version-created.v1", registry_pb2.PromptVersionCreated),
        events.EventType(f"{base}.prompt-label-changed.v1", registry_pb2.PromptLabelChanged))
    await ensure_topics(kafka, topics.all(), partitions=1)
    auth = f"sqlite:///{tmp}/auth.db"
    rsettings = RegistrySettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka, api_keys=KEYS,
                                 database_url=f"sqlite:///{tmp}/registry.db",
                                 auth_database_url=auth, outbox_interval_seconds=0.5)
    rbus = EventBus(kafka, client_id=f"test-registry-{run}")
    await rbus.start()
    registry = await build_registry(rsettings, rbus, topics, gate=AllowGate())
    rserver = build_grpc(rsettings, registry)
    rport = await rserver.start()
    registry.relay.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{rport}")

    # Inference, with the canary resolver and the alias-event consumer of a replica. A long
    # TTL: what changes a resolution within a test is the event, not the expiry.
    isettings = InferenceSettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka,
                                  api_keys=KEYS, auth_database_url=auth)
    client = RegistryClient(f"127.0.0.1:{rport}", 10.0, MODEL, ttl_seconds=600)
    # A seeded draw: the share test is a binomial check that cannot flake between runs.
    models = CanaryResolver(client, "production", ttl_seconds=600,
                            draw=random.Random(20261201).random)
    rest, gen, sink = Rest(), Generation_(), Sink()
    service = AnswerService(rest, rest, models, rest, gen, sink, AnswerCache(10, 60), Limits())
    iserver = GrpcServer("127.0.0.1", 0, build_resolver(isettings))
    iserver.add(inference_pb2_grpc.add_InferenceServiceServicer_to_server,
                InferenceServicer(service, isettings, FeedbackService(rest, None)),  # type: ignore[arg-type]
                [SERVICE_FULL_NAME], ROLES)
    iport = await iserver.start()
    ibus = EventBus(kafka, client_id=f"test-inference-{run}")
    group = f"inference-test-{run}"
    await start_group_at_end(kafka, group, [topics.model_alias_changed.topic])
    event_api.register(ibus, event_api.AliasHandlers(models), group,
                       source=topics.model_alias_changed)
    await ibus.start()
    ichannel = grpc.aio.insecure_channel(f"127.0.0.1:{iport}")
    stub = registry_pb2_grpc.ModelRegistryServiceStub(channel)
    # Per tenant: v2 a healthy LoRA, v3 one whose adapter fails to load.
    for tenant in TENANTS:
        for adapter in ("good", "broken"):
            await stub.RegisterModelVersion(registry_pb2.RegisterModelVersionRequest(
                name=MODEL, artifact_uri=f"file:///adapters/{adapter}", format="peft-lora",
                metadata={"adapter_id": adapter}), metadata=md(tenant))
    try:
        yield Rig(registry, rollout_pb2_grpc.RolloutServiceStub(channel), stub,
                  inference_pb2_grpc.InferenceServiceStub(ichannel), gen, sink)
    finally:
        await ichannel.close()
        await channel.close()
        await iserver.stop(0)
        await ibus.stop()
        await models.close()
        await rserver.stop(0)
        await registry.relay.stop()
        await rbus.stop()
        registry.engine.dispose()


async def until(predicate, timeout: float = 30.0, tick: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(tick)


async def versions_of(rig: Rig, tenant: str) -> dict[str, int]:
    """The tenant's own versions by adapter id (the seeded v1 is the shared production)."""
    listed = await rig.models.ListModelVersions(
        registry_pb2.ListModelVersionsRequest(name=MODEL), metadata=md(tenant))
    return {v.metadata["adapter_id"]: v.version for v in listed.versions
            if "adapter_id" in v.metadata}


async def start_good_canary(rig: Rig, tenant: str, share: int) -> int:
    """Starts the tenant's canary of its healthy version (no analysis: a long interval)."""
    good = (await versions_of(rig, tenant))["good"]
    await rig.rollout.StartCanary(rollout_pb2.StartCanaryRequest(
        name=MODEL, candidate_version=good, share=share, interval_seconds=3600),
        metadata=md(tenant))
    return good


async def test_canary_share_is_within_binomial_tolerance(rig: Rig) -> None:
    tenant = "acme"
    good = (await versions_of(rig, tenant))["good"]
    canary = await rig.rollout.StartCanary(rollout_pb2.StartCanaryRequest(
        name=MODEL, candidate_version=good, share=30, interval_seconds=3600),
        metadata=md(tenant))
    assert (canary.production_version, canary.candidate_version, canary.share) == (1, good, 30)
    n, p = 300, 0.30
    served: list[str] = []
    for _ in range(n // 25):
        served += await rig.ask(tenant, 25)
    on_candidate = served.count(f"{MODEL}@{good}")
    assert served.count(f"{MODEL}@1") + on_candidate == n
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(on_candidate - n * p) <= 3 * sigma, (on_candidate, n * p, sigma)
    print(f"canary share: {on_candidate} of {n} on the candidate (expected {n * p:.0f} "
          f"+- {3 * sigma:.0f})")
    # Every answer's event says which version served and whether the canary routed it.
    mine = [a for _, t, a in rig.sink.answers if t == tenant]
    assert sum(a.model is not None and a.model.canary for a in mine) == on_candidate
    assert all(a.model_version == f"{MODEL}@{good}" for a in mine if a.model and a.model.canary)
    # Another tenant has no canary: all of its traffic stays on production.
    assert set(await rig.ask("globex", 20)) == {f"{MODEL}@1"}

    # Aborting is an alias change: inference hears of it at once (its caches live 10 min).
    await rig.rollout.AbortCanary(rollout_pb2.AbortCanaryRequest(name=MODEL, reason="done"),
                                  metadata=md(tenant))

    async def all_production() -> bool:
        return set(await rig.ask(tenant, 20)) == {f"{MODEL}@1"}

    await until(all_production, timeout=20)


async def test_faulty_candidate_is_rolled_back_automatically(rig: Rig) -> None:
    tenant = "globex"
    broken = (await versions_of(rig, tenant))["broken"]
    await rig.rollout.StartCanary(rollout_pb2.StartCanaryRequest(
        name=MODEL, candidate_version=broken, share=50, step=20, interval_seconds=1,
        threshold=2, thresholds=rollout_pb2.CanaryThresholds(min_requests=5)),
        metadata=md(tenant))
    assert rig.registry.rollouts is not None
    controller = CanaryController(rig.registry.rollouts, SinkMetrics(rig.sink),
                                  rig.registry.rollouts.store, tick_seconds=0.2)  # type: ignore[arg-type]
    controller.start()
    failures = 0

    async def rolled_back() -> bool:
        nonlocal failures
        results = await asyncio.gather(*(rig.inference.Generate(
            inference_pb2.GenerateRequest(question=uuid.uuid4().hex, rag=False, no_cache=True),
            metadata=md(tenant)) for _ in range(10)), return_exceptions=True)
        failures += sum(isinstance(r, grpc.aio.AioRpcError) for r in results)
        got = await rig.rollout.GetCanary(rollout_pb2.GetCanaryRequest(name=MODEL),
                                          metadata=md(tenant))
        return got.state == rollout_pb2.CANARY_STATE_ROLLED_BACK

    try:
        started = time.monotonic()
        await until(rolled_back, timeout=60, tick=0.1)
        took = time.monotonic() - started
    finally:
        await controller.stop()
    assert failures > 0
    # Only the candidate failed: each failed answer names it.
    failed = [a for _, t, a in rig.sink.answers if t == tenant and a.error]
    assert failed and {a.model_version for a in failed} == {f"{MODEL}@{broken}"}
    got = await rig.rollout.GetCanary(rollout_pb2.GetCanaryRequest(name=MODEL),
                                      metadata=md(tenant))
    assert got.failed_checks == 2 and got.share == 0 and got.last_good_version == 1
    history = await rig.rollout.GetRolloutHistory(
        rollout_pb2.GetRolloutHistoryRequest(name=MODEL), metadata=md(tenant))
    reasons = [c.reason for c in history.changes]
    assert any("failed check 1 of 2" in r and "error rate" in r for r in reasons)
    assert any(r.startswith("rolled back to v1 after 2 failed checks") for r in reasons)

    async def healthy() -> bool:
        # Until the rollback's alias event reaches the replica, the candidate may still fail.
        try:
            return set(await rig.ask(tenant, 20)) == {f"{MODEL}@1"}
        except grpc.aio.AioRpcError:
            return False

    await until(healthy, timeout=20)
    assert set(await rig.ask(tenant, 30)) == {f"{MODEL}@1"}
    print(f"automatic rollback {took:.1f}s after the canary started")


async def test_rollback_under_concurrent_traffic_fails_no_request(rig: Rig) -> None:
    tenant = "initech"
    good = await start_good_canary(rig, tenant, share=50)
    rig.generator.release.clear()
    n = 40

    async def one_stream() -> tuple[str, float]:
        final = None
        async for msg in rig.inference.GenerateStream(
                inference_pb2.GenerateRequest(question=uuid.uuid4().hex, rag=False,
                                              no_cache=True), metadata=md(tenant)):
            if msg.HasField("final"):
                final = msg.final
        assert final is not None
        return final.model_version, time.monotonic()

    streams = [asyncio.create_task(one_stream()) for _ in range(n)]

    async def all_started() -> bool:
        return rig.generator.in_flight == n

    await until(all_started, timeout=30, tick=0.05)
    # More traffic keeps coming while the rollback happens.
    extra = [asyncio.create_task(rig.ask(tenant, 5)) for _ in range(4)]
    resp = await rig.rollout.Rollback(rollout_pb2.RollbackRequest(name=MODEL, reason="test"),
                                      metadata=md(tenant))
    rolled_back_at = time.monotonic()
    assert (resp.from_version, resp.to_version) == (1, 1)
    assert resp.canary.state == rollout_pb2.CANARY_STATE_ROLLED_BACK
    rig.generator.release.set()
    results = await asyncio.gather(*streams, *extra, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    finished = results[:n]
    versions = [v for v, _ in finished]  # type: ignore[misc]
    assert set(versions) <= {f"{MODEL}@1", f"{MODEL}@{good}"}
    # Streams that started on the candidate finished on it, after the rollback.
    on_candidate = [at for v, at in finished if v == f"{MODEL}@{good}"]  # type: ignore[misc]
    assert on_candidate and all(at >= rolled_back_at for at in on_candidate)

    async def all_production() -> bool:
        return set(await rig.ask(tenant, 20)) == {f"{MODEL}@1"}

    await until(all_production, timeout=20)
    assert datetime.now(UTC)  # the module's tenants are independent: nothing left behind


async def test_a_session_is_served_by_one_version_while_the_share_holds(rig: Rig) -> None:
    # After the first test aborted its canary, acme starts another one (sticky sessions).
    tenant = "acme"
    good = await start_good_canary(rig, tenant, share=50)

    async def canary_known() -> bool:  # inference learns of it from the alias events
        return f"{MODEL}@{good}" in await rig.ask(tenant, 10)

    await until(canary_known, timeout=20)
    sessions = [f"chat-{uuid.uuid4().hex[:8]}" for _ in range(30)]
    served: dict[str, list[str]] = {s: [] for s in sessions}
    for _ in range(4):  # four rounds: every session asks again, all sessions at once
        for s, version in zip(sessions, await rig.ask(tenant, sessions=sessions), strict=True):
            served[s].append(version)
    assert all(len(set(v)) == 1 for v in served.values()), served
    firsts = {v[0] for v in served.values()}
    assert firsts == {f"{MODEL}@1", f"{MODEL}@{good}"}  # 30 sessions at 50 %: both serve
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rig.inference.Generate(inference_pb2.GenerateRequest(
            question="q", rag=False, session_id="x" * 129), metadata=md(tenant))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(caught.value) == "BAD_SESSION_ID"
    await rig.rollout.AbortCanary(rollout_pb2.AbortCanaryRequest(name=MODEL, reason="done"),
                                  metadata=md(tenant))
