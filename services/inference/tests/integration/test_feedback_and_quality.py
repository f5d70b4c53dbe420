"""SubmitFeedback and InferenceCompleted's quality fields over real sockets: inference's gRPC
API (auth, roles, error trailers), the real safety service (PII redaction) and the real
embedding service (all-MiniLM-L6-v2) on gRPC, events on a real Kafka topic of this run.
Retrieval, prompts, models and generation are stand-ins, so the answers are known."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import pytest

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops.safety.v1 import safety_pb2
from llmops_embedding.adapters.sentence_transformers import SentenceTransformerEmbedder
from llmops_embedding.bootstrap import build_grpc as build_embedding_grpc
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_embedding.settings import EncoderSettings
from llmops_embedding.settings import Settings as EmbeddingSettings
from llmops_inference.adapters.embedding import EmbeddingClient
from llmops_inference.adapters.safety import SafetyGuard
from llmops_inference.api.completion import BusCompletionSink
from llmops_inference.api.feedback import BusFeedbackPublisher
from llmops_inference.api.grpc import ROLES, SERVICE_FULL_NAME, InferenceServicer
from llmops_inference.domain.cache import AnswerCache
from llmops_inference.domain.feedback import FeedbackService
from llmops_inference.domain.model import (
    Generation,
    ModelRef,
    Passage,
    RenderedPrompt,
)
from llmops_inference.domain.pipeline import AnswerService, Limits
from llmops_inference.domain.quality import QualityConfig, QualityScorer
from llmops_inference.settings import Settings
from llmops_kit import events
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.key_resolver import build_resolver
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import error_reason, read_topic
from llmops_safety.adapters.profanity_check import ProfanityCheckModel
from llmops_safety.api.events import BackgroundPublisher
from llmops_safety.bootstrap import build_grpc as build_safety_grpc
from llmops_safety.bootstrap import build_service
from llmops_safety.domain.engine import SafetyEngine
from llmops_safety.settings import Settings as SafetySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MD = (("x-api-key", "dev-member-acme"),)
CORPUS = [
    Passage(1, "expense-policy.html", "expenses#0", "Expenses", "The daily meal allowance while "
            "travelling is 75 euros in Europe and 90 US dollars in North America.", 0.9),
    Passage(2, "vacation-policy.md", "vacation#0", "Vacation", "Every full-time employee "
            "accrues 25 days of paid vacation per calendar year.", 0.4),
]
GROUNDED = "The daily meal allowance is 75 euros in Europe [1]."
UNRELATED = "Penguins live in Antarctica and eat fish."


class Retriever:
    """Embeds with the real embedding service (so its vector is reused); fixed passages."""

    def __init__(self, embedder: EmbeddingClient) -> None:
        self.embedder = embedder

    async def embed(self, question: str) -> list[float]:
        return (await self.embedder.embed_texts([question])).vectors[0]

    async def search(self, question: str, vector: Sequence[float], top_k: int) -> list[Passage]:
        return CORPUS[:top_k]


class Rest:
    """Prompts, models and generation: the answer is unrelated when the question says so."""

    async def render(self, name: str, label: str, question: str, passages: Sequence[Passage]
                     ) -> RenderedPrompt:
        return RenderedPrompt(name, 1, "system", question)

    async def resolve(self, alias: str) -> ModelRef:
        return ModelRef("smollm2", 1)

    def invalidate(self, model_name: str | None = None, tenant: str | None = None) -> None: ...

    async def prepare(self, model: ModelRef) -> None: ...

    async def generate(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                       temperature: float | None, seed: int | None) -> Generation:
        return Generation(UNRELATED if "penguin" in prompt.user else GROUNDED, 30, 12, "stop")

    async def stream(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                     temperature: float | None, seed: int | None
                     ) -> AsyncIterator[str | Generation]:
        gen = await self.generate(prompt, model, max_new_tokens, temperature, seed)
        yield gen.text
        yield gen


@dataclass
class Rig:
    address: str
    completed: events.EventType[inference_pb2.InferenceCompleted]
    feedback: events.EventType[inference_pb2.FeedbackSubmitted]
    sink: BusCompletionSink
    # An inference whose safety service is down.
    address_without_safety: str


async def start_safety(kafka: KafkaSettings, run: str) -> tuple[GrpcServer, EventBus,
                                                                  BackgroundPublisher]:
    verdicts = events.EventType(f"llmops.test-{run}.safety-verdict-issued.v1",
                                safety_pb2.SafetyVerdictIssued)
    await ensure_topics(kafka, [verdicts.topic], partitions=1)
    settings = SafetySettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka)
    bus = EventBus(kafka, client_id=f"test-safety-{run}")
    publisher = BackgroundPublisher(bus, verdicts, timeout=10.0)
    server = build_safety_grpc(settings, build_service(
        settings, SafetyEngine(ProfanityCheckModel.load()), publisher), publisher)
    await bus.start()
    await server.start()
    return server, bus, publisher


def inference_server(settings: Settings, safety: str, embedding: str, bus: EventBus,
                     rig_topics: tuple[events.EventType[inference_pb2.InferenceCompleted],
                                       events.EventType[inference_pb2.FeedbackSubmitted]],
                     ) -> tuple[GrpcServer, BusCompletionSink, list[object]]:
    guard = SafetyGuard(safety, 10.0)
    embedder = EmbeddingClient(embedding, 10.0)
    sink = BusCompletionSink(bus, guard, QualityScorer(embedder, QualityConfig()),
                             event_type=rig_topics[0])
    rest = Rest()
    service = AnswerService(Retriever(embedder), rest, rest, guard, rest, sink,
                            AnswerCache(10, 60), Limits())
    feedback = FeedbackService(guard, BusFeedbackPublisher(bus, event_type=rig_topics[1]))
    server = GrpcServer("127.0.0.1", 0, build_resolver(settings))
    server.add(inference_pb2_grpc.add_InferenceServiceServicer_to_server,
               InferenceServicer(service, settings, feedback), [SERVICE_FULL_NAME], ROLES)
    return server, sink, [guard, embedder]


@pytest.fixture(scope="module")
async def rig(kafka: KafkaSettings) -> AsyncIterator[Rig]:
    run = uuid.uuid4().hex[:10]
    topics = (events.EventType(f"llmops.test-{run}.inference-completed.v1",
                               inference_pb2.InferenceCompleted),
              events.EventType(f"llmops.test-{run}.feedback-submitted.v1",
                               inference_pb2.FeedbackSubmitted))
    await ensure_topics(kafka, [t.topic for t in topics], partitions=1)
    safety, safety_bus, verdicts = await start_safety(kafka, run)
    embedding = build_embedding_grpc(
        EmbeddingSettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka),
        EmbeddingService(await SentenceTransformerEmbedder.load(EncoderSettings())))
    embedding_port = await embedding.start()
    settings = Settings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka)
    bus = EventBus(kafka, client_id=f"test-inference-{run}")
    await bus.start()
    server, sink, clients = inference_server(
        settings, f"127.0.0.1:{safety.port}", f"127.0.0.1:{embedding_port}", bus, topics)
    # Safety down: nothing listens on port 1.
    lame, _, lame_clients = inference_server(
        settings, "127.0.0.1:1", f"127.0.0.1:{embedding_port}", bus, topics)
    try:
        port, lame_port = await server.start(), await lame.start()
        yield Rig(f"127.0.0.1:{port}", *topics, sink, f"127.0.0.1:{lame_port}")
    finally:
        await server.stop(0)
        await lame.stop(0)
        await sink.drain()
        for client in [*clients, *lame_clients]:
            await client.close()  # type: ignore[attr-defined]
        await bus.stop()
        await embedding.stop(0)
        await safety.stop(0)
        await verdicts.drain()
        await safety_bus.stop()


async def stub(address: str) -> inference_pb2_grpc.InferenceServiceStub:
    return inference_pb2_grpc.InferenceServiceStub(grpc.aio.insecure_channel(address))


async def test_feedback_is_published_with_its_comment_redacted(rig: Rig, kafka: KafkaSettings
                                                               ) -> None:
    inference = await stub(rig.address)
    answer = await inference.Generate(inference_pb2.GenerateRequest(question="Meal allowance?"),
                                      metadata=MD, timeout=30)
    resp = await inference.SubmitFeedback(inference_pb2.SubmitFeedbackRequest(
        request_id=answer.request_id, rating=-1,
        comment="Wrong amount. Call me at jane.doe@example.com"), metadata=MD, timeout=30)
    assert resp.comment_redacted and resp.feedback_id
    [record] = await read_topic(kafka, rig.feedback.topic, 1)
    event = events.decode(rig.feedback, record.value)
    assert record.key == b"acme" and event.envelope.event_id == resp.feedback_id
    assert (event.envelope.tenant_id, event.request_id, event.rating) == (
        "acme", answer.request_id, -1)
    assert "jane.doe@example.com" not in event.redacted_comment
    assert event.redacted_comment.startswith("Wrong amount. Call me at [")
    assert "jane.doe@example.com" not in str(record.value)


@pytest.mark.parametrize(("request_id", "rating", "comment", "reason"), [
    ("", 1, "", "MISSING_REQUEST_ID"),
    ("not-an-id", 1, "", "BAD_REQUEST_ID"),
    (str(uuid.uuid4()), 0, "", "BAD_RATING"),
    (str(uuid.uuid4()), 1, "x" * 2001, "COMMENT_TOO_LONG"),
])
async def test_bad_feedback_is_invalid_argument_with_a_reason(
    rig: Rig, request_id: str, rating: int, comment: str, reason: str
) -> None:
    inference = await stub(rig.address)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inference.SubmitFeedback(inference_pb2.SubmitFeedbackRequest(
            request_id=request_id, rating=rating, comment=comment), metadata=MD, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(err.value) == reason


async def test_feedback_with_safety_down_is_unavailable_and_publishes_nothing(
    rig: Rig, kafka: KafkaSettings
) -> None:
    before = len(await read_topic(kafka, rig.feedback.topic, 10**6, timeout=3))
    inference = await stub(rig.address_without_safety)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inference.SubmitFeedback(inference_pb2.SubmitFeedbackRequest(
            request_id=str(uuid.uuid4()), rating=1, comment="fine"), metadata=MD, timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(err.value) == "SAFETY_UNAVAILABLE"
    assert len(await read_topic(kafka, rig.feedback.topic, 10**6, timeout=3)) == before
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inference.SubmitFeedback(inference_pb2.SubmitFeedbackRequest(
            request_id=str(uuid.uuid4()), rating=1), metadata=(("x-api-key", "wrong"),))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_completed_events_carry_request_id_citations_and_quality(
    rig: Rig, kafka: KafkaSettings
) -> None:
    inference = await stub(rig.address)
    grounded = await inference.Generate(inference_pb2.GenerateRequest(
        question="What is the daily meal allowance? I am bob@example.com", top_k=2),
        metadata=MD, timeout=30)
    unrelated = await inference.Generate(inference_pb2.GenerateRequest(
        question="Tell me about penguins", top_k=2), metadata=MD, timeout=30)
    await rig.sink.drain()
    by_id = {}
    for record in await read_topic(kafka, rig.completed.topic, 10**6, timeout=5):
        event = events.decode(rig.completed, record.value)
        by_id[event.envelope.event_id] = event
    g, u = by_id[grounded.request_id], by_id[unrelated.request_id]
    assert "bob@example.com" not in g.redacted_question and g.error == ""
    assert [(c.chunk_id, c.excerpt) for c in g.citations] == [("expenses#0", "")]
    # The real model: the grounded answer's sentence is supported by its cited passage; the
    # unrelated answer's is not supported by anything retrieved.
    assert g.HasField("groundedness") and g.groundedness == 1.0
    assert (g.answer_sentences, g.supported_sentences) == (1, 1)
    assert u.HasField("groundedness") and u.groundedness == 0.0 and u.answer_sentences == 1
    for event in (g, u):
        assert len(event.question_embedding) == 384
        assert event.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
    # Retrieval strength: the meal question is close to the expenses passage; penguins are not.
    assert g.best_retrieval_score > 0.5 > u.best_retrieval_score
