"""`llmops eval` over the real pieces it needs: the model registry (gRPC, SQLite, Kafka) with
its EvaluationService, inference's gRPC API and answer pipeline resolving the pinned version
and rendering the prompt through that registry, inference's completion sink publishing
InferenceCompleted with its groundedness scorer to a real Kafka topic, and the runner reading
it back. Retrieval, safety, embeddings and generation are stand-ins (the answers are known:
version 2 answers right, version 1 does not). Three questions."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops.registry.v1 import evaluation_pb2, evaluation_pb2_grpc, registry_pb2, registry_pb2_grpc
from llmops_cli.eval_groundedness import KafkaGroundedness
from llmops_cli.eval_runner import load_set, run_set
from llmops_cli.testing import run
from llmops_inference.adapters.registry import RegistryClient
from llmops_inference.api.completion import BusCompletionSink
from llmops_inference.api.grpc import ROLES, SERVICE_FULL_NAME, InferenceServicer
from llmops_inference.domain.cache import AnswerCache
from llmops_inference.domain.feedback import FeedbackService
from llmops_inference.domain.model import (
    Embeddings,
    Generation,
    ModelRef,
    Passage,
    RenderedPrompt,
    SafetyResult,
    Verdict,
)
from llmops_inference.domain.pipeline import AnswerService, Limits
from llmops_inference.domain.quality import QualityConfig, QualityScorer
from llmops_inference.domain.refusal import AnswerPolicies, AnswerPolicy
from llmops_inference.settings import Settings as InferenceSettings
from llmops_kit import events
from llmops_kit.evaluation.proto import result_pb
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.key_resolver import build_resolver
from llmops_kit.settings import KafkaSettings
from llmops_registry.api.events import RegistryTopics
from llmops_registry.bootstrap import build_grpc, build_registry
from llmops_registry.settings import Settings as RegistrySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

KEYS = "k-acme=acme:maintainer"
MD = (("x-api-key", "k-acme"),)
MODEL = "smollm2-135m-instruct"
QUESTIONS = [
    {"id": "en-a01", "lang": "en", "question": "How many days of paid vacation do I get?",
     "document": "vacation-policy.md", "facts": ["25 days", "25"]},
    {"id": "en-a02", "lang": "en", "question": "What is the daily meal allowance in Europe?",
     "document": "expense-policy.html", "facts": ["75 euros"]},
    {"id": "en-x01", "lang": "en", "question": "Who is the dental insurance provider?",
     "document": None, "facts": []},
]
PASSAGES = {
    "vacation": Passage(1, "vacation-policy.md", "vac#0", "Vacation", "Every full-time employee "
                        "accrues 25 days of paid vacation per calendar year.", 0.9,
                        similarity=0.8),
    "meal": Passage(1, "expense-policy.html", "exp#0", "Expenses", "The daily meal allowance "
                    "while travelling is 75 euros in Europe.", 0.9, similarity=0.7),
    "dental": Passage(1, "product-faq.txt", "faq#0", "FAQ", "The product ships quarterly.", 0.3,
                      similarity=0.05),
}
ANSWERS = {  # (version 1, version 2)
    "vacation": ("You get 20 days of vacation per year [1].",
                 "You get 25 days of paid vacation per calendar year [1]."),
    "meal": ("The meal allowance is 60 euros in Europe [1].",
             "The daily meal allowance is 75 euros in Europe [1]."),
}


def words_vector(text: str) -> list[float]:
    """Bag of hashed words: sentences sharing words with a passage are close to it."""
    v = [0.0] * 64
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        v[int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1.0
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / n for x in v]


def topic_of(question: str) -> str:
    q = question.lower()
    return "vacation" if "vacation" in q else "meal" if "meal" in q else "dental"


class Stand:
    """Retrieval, safety, embeddings and generation with known results."""

    async def embed(self, question: str) -> list[float]:
        return words_vector(question)

    async def search(self, question: str, vector: Sequence[float], top_k: int) -> list[Passage]:
        return [PASSAGES[topic_of(question)]]

    async def check(self, text: str, direction: str) -> SafetyResult:
        return SafetyResult(Verdict.ALLOW, text)

    async def redact(self, text: str) -> str:
        return text

    async def embed_texts(self, texts: Sequence[str]) -> Embeddings:
        return Embeddings([words_vector(t) for t in texts], "words")

    async def model_name(self) -> str:
        return "words"

    async def prepare(self, model: ModelRef) -> None: ...

    async def generate(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                       temperature: float | None, seed: int | None) -> Generation:
        answer = ANSWERS[topic_of(prompt.user)][model.version - 1]
        return Generation(answer, 50, 12, "stop", model.label)

    def stream(self, *args: object) -> AsyncIterator[str | Generation]:
        raise NotImplementedError


@pytest.fixture
async def stack(tmp_path: Path, kafka: KafkaSettings) -> AsyncIterator[tuple[str, str, str]]:
    run_id = uuid.uuid4().hex[:10]
    base = f"llmops.test-{run_id}"
    rtopics = RegistryTopics(
        events.EventType(f"{base}.mvc.v1", registry_pb2.ModelVersionCreated),
        events.EventType(f"{base}.mac.v1", registry_pb2.ModelAliasChanged),
        events.EventType(f"{base}.pvc.v1", registry_pb2.PromptVersionCreated),
        events.EventType(f"{base}.plc.v1", registry_pb2.PromptLabelChanged),
        events.EventType(f"{base}.ec.v1", evaluation_pb2.EvaluationCompleted))
    completed = events.EventType(f"{base}.inference-completed.v1",
                                 inference_pb2.InferenceCompleted)
    await ensure_topics(kafka, [*rtopics.all(), completed.topic], partitions=1)
    bus = EventBus(kafka, client_id=f"eval-stack-{run_id}")
    await bus.start()
    rsettings = RegistrySettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka, api_keys=KEYS,
                                 database_url=f"sqlite:///{tmp_path}/registry.db",
                                 auth_database_url=f"sqlite:///{tmp_path}/platform.db")
    registry = await build_registry(rsettings, bus, rtopics)
    rserver = build_grpc(rsettings, registry)
    registry_address = f"127.0.0.1:{await rserver.start()}"
    # Version 2: acme's own fine-tune (served as the base model: no adapter metadata).
    async with grpc.aio.insecure_channel(registry_address) as ch:
        await registry_pb2_grpc.ModelRegistryServiceStub(ch).RegisterModelVersion(
            registry_pb2.RegisterModelVersionRequest(name=MODEL, artifact_uri="s3://m/v2",
                                                     format="hf"), metadata=MD)

    stand = Stand()
    models = RegistryClient(registry_address, 10.0, MODEL)
    sink = BusCompletionSink(bus, stand, QualityScorer(stand, QualityConfig()),
                             event_type=completed)
    service = AnswerService(stand, models, models, stand, stand, sink, AnswerCache(10, 60),
                            Limits(), policies=AnswerPolicies(AnswerPolicy(0.2, None, None)))
    isettings = InferenceSettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka, api_keys=KEYS)
    iserver = GrpcServer("127.0.0.1", 0, build_resolver(isettings))
    iserver.add(inference_pb2_grpc.add_InferenceServiceServicer_to_server,
                InferenceServicer(service, isettings, FeedbackService(stand, None)),  # type: ignore[arg-type]
                [SERVICE_FULL_NAME], ROLES)
    inference_address = f"127.0.0.1:{await iserver.start()}"
    try:
        yield registry_address, inference_address, completed.topic
    finally:
        await iserver.stop(0)
        await sink.drain()
        await models.close()
        await rserver.stop(0)
        await bus.stop()
        registry.engine.dispose()


async def test_runs_of_two_versions_are_recorded_compared_and_gate_the_promotion(
        stack: tuple[str, str, str], kafka: KafkaSettings, tmp_path: Path, monkeypatch,
        capsys) -> None:
    registry_address, inference_address, completed_topic = stack
    path = tmp_path / "three.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in QUESTIONS), encoding="utf-8")
    evalset = load_set(str(path), "acme", None)  # type: ignore[arg-type]
    topic = events.EventType(completed_topic, inference_pb2.InferenceCompleted)
    run_ids = {}
    async with grpc.aio.insecure_channel(inference_address) as ich, \
            grpc.aio.insecure_channel(registry_address) as rch:
        inference = inference_pb2_grpc.InferenceServiceStub(ich)
        evaluations = evaluation_pb2_grpc.EvaluationServiceStub(rch)

        async def generate(req: inference_pb2.GenerateRequest) -> inference_pb2.GenerateResponse:
            return await inference.Generate(req, metadata=MD, timeout=30)

        for version in (1, 2):
            outcome = await run_set(generate, evalset.questions, MODEL, version, "rag-answer",
                                    "production", 64, KafkaGroundedness(kafka, 30, topic))
            assert outcome.mismatched == [] and outcome.prompt_version == 1
            by_id = {r.question_id: r for r in outcome.results}
            refused = by_id["en-x01"]
            assert (refused.refusal, refused.groundedness, refused.answerable) == \
                ("WEAK_RETRIEVAL", None, False)
            answered = by_id["en-a01"]
            assert (answered.holds_fact, answered.cited) == (version == 2, True)
            assert (answered.prompt_tokens, answered.completion_tokens) == (50, 12)
            assert answered.safety == "allow" and answered.latency_ms > 0
            # Inference's own groundedness, read back from InferenceCompleted.
            assert answered.groundedness is not None and 0.0 < answered.groundedness <= 1.0
            recorded = await evaluations.RecordEvaluationRun(
                evaluation_pb2.RecordEvaluationRunRequest(
                    model_name=MODEL, model_version=version, prompt_name="rag-answer",
                    prompt_version=outcome.prompt_version, dataset=evalset.name,
                    results=[result_pb(r) for r in outcome.results]), metadata=MD)
            run_ids[version] = recorded.id
            assert recorded.totals["holds_fact"] == (1.0 if version == 2 else 0.0)
            assert recorded.totals["refused_when_not_covered"] == 1.0

    monkeypatch.setenv("LLMOPS_REGISTRY_ADDR", registry_address)
    monkeypatch.setenv("LLMOPS_DEV_MODE", "true")
    monkeypatch.setenv("LLMOPS_API_KEYS", KEYS)
    monkeypatch.delenv("LLMOPS_API_KEY", raising=False)
    capsys.readouterr()
    # The CLI runs its own event loop: in a thread, as from a shell.
    assert await asyncio.to_thread(
        run, ["eval", "compare", run_ids[1], run_ids[2], "--json", "--tenant", "acme"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert {m["metric"]: m["delta"] for m in cmp["metrics"]}["holds_fact"] == 1.0
    assert {q["question_id"] for q in cmp["changed"]} == {"en-a01", "en-a02"}
    # v2 beats production (the shared v1) on the same set: the tenant's production moves.
    assert await asyncio.to_thread(
        run, ["models", "promote", f"{MODEL}@2", "--json", "--tenant", "acme"]) == 0
    promoted = json.loads(capsys.readouterr().out)
    # Compared with the shared v1's run; acme's own alias is created (previous 0).
    assert (promoted["allowed"], promoted["version"], promoted["changed"]) == (True, 2, True)
    assert (promoted["candidate_run_id"], promoted["production_run_id"]) == (run_ids[2],
                                                                            run_ids[1])
