"""Hybrid answers streamed over gRPC: the client sees only the final answer's text.

Real sockets: the inference service's gRPC server (GenerateStream and Generate) and the
embedding service's (the shipped model: the extractor and the support check embed with it).
Stand-ins: retrieval (the sample corpus' files as passages), prompts, models, safety (allow)
and the generation backend, which streams a scripted reply token by token, slowly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops_embedding.adapters.sentence_transformers import SentenceTransformerEmbedder
from llmops_embedding.bootstrap import build_grpc as build_embedding_grpc
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_embedding.settings import EncoderSettings
from llmops_embedding.settings import Settings as EmbeddingSettings
from llmops_inference.adapters.embedding import EmbeddingClient
from llmops_inference.api.grpc import ROLES, SERVICE_FULL_NAME, InferenceServicer
from llmops_inference.domain.cache import AnswerCache
from llmops_inference.domain.extractive import Extractor
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
from llmops_inference.domain.refusal import AnswerPolicies, AnswerPolicy, GroundingCheck
from llmops_inference.settings import Settings as InferenceSettings
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.key_resolver import build_resolver
from llmops_kit.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# The embedding service answers development keys in the test environment; inference knows it
# as a static key, and forwards it to the embedding service.
KEY = "dev-member-acme"
MD = (("x-api-key", KEY),)
CORPUS = Path(__file__).resolve().parents[4] / "samples" / "corpus"
STOLEN = "My laptop was stolen, who do I tell?"
REPORT = ("Report a lost or stolen laptop to the security team within one hour at "
          "security@example.com so that the device can be wiped remotely. [1]")
TOKEN_DELAY = 0.05


class Rest:
    """Retrieval (two corpus files, the answering one first), prompts, models, safety."""

    async def embed(self, question: str) -> list[float]:
        return [1.0]

    async def search(self, question: str, vector: Sequence[float], top_k: int) -> list[Passage]:
        files = ("security-handbook.md", "it-helpdesk-faq.md")
        return [Passage(n, f, f"{f}#0", f, (CORPUS / f).read_text(encoding="utf-8"), 1.0 / n,
                        similarity=0.6) for n, f in enumerate(files, start=1)]

    async def render(self, name: str, label: str, question: str, passages: Sequence[Passage]
                     ) -> RenderedPrompt:
        return RenderedPrompt(name, 1, "", question)

    async def resolve(self, alias: str) -> ModelRef:
        return ModelRef("smollm2", 1)

    def invalidate(self, model_name: str | None = None, tenant: str | None = None) -> None: ...

    async def check(self, text: str, direction: str) -> SafetyResult:
        return SafetyResult(Verdict.ALLOW, text)

    async def redact(self, text: str) -> str:
        return text


class ScriptedModel:
    """Replies `reply`, a word every TOKEN_DELAY seconds, streamed or whole."""

    def __init__(self) -> None:
        self.reply = ""

    async def prepare(self, model: ModelRef) -> None: ...

    def _words(self) -> list[str]:
        words = self.reply.split(" ")
        return [w + " " for w in words[:-1]] + words[-1:]

    async def generate(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                       temperature: float | None, seed: int | None) -> Generation:
        await asyncio.sleep(TOKEN_DELAY * len(self._words()))
        return Generation(self.reply, 40, len(self._words()), "stop")

    async def stream(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                     temperature: float | None, seed: int | None
                     ) -> AsyncIterator[str | Generation]:
        for word in self._words():
            await asyncio.sleep(TOKEN_DELAY)
            yield word
        yield Generation(self.reply, 40, len(self._words()), "stop")


class Sink:
    def __init__(self) -> None:
        self.answers: list[Answer] = []

    def submit(self, question: Question, answer: Answer, streamed: bool) -> None:
        self.answers.append(answer)


@dataclass
class Rig:
    stub: inference_pb2_grpc.InferenceServiceStub
    model: ScriptedModel
    sink: Sink


@pytest.fixture(scope="module")
async def rig(kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[Rig]:
    tmp = tmp_path_factory.mktemp("hybrid-stream")
    eserver = build_embedding_grpc(
        EmbeddingSettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka),
        EmbeddingService(await SentenceTransformerEmbedder.load(EncoderSettings())))
    eport = await eserver.start()
    embedder = EmbeddingClient(f"127.0.0.1:{eport}", 30)
    settings = InferenceSettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka,
                                 api_keys=f"{KEY}=acme:member",
                                 auth_database_url=f"sqlite:///{tmp}/auth.db")
    # As bootstrap builds it for a hybrid policy (the settings' thresholds).
    extractor = Extractor(embedder, GroundingCheck(embedder, settings.groundedness_threshold),
                          min_groundedness=settings.hybrid_min_groundedness,
                          max_passages=settings.extractive_passages)
    rest, model, sink = Rest(), ScriptedModel(), Sink()
    service = AnswerService(rest, rest, rest, rest, model, sink, AnswerCache(10, 60), Limits(),
                            policies=AnswerPolicies(AnswerPolicy(answer_mode="hybrid")),
                            extractor=extractor)
    server = GrpcServer("127.0.0.1", 0, build_resolver(settings))
    server.add(inference_pb2_grpc.add_InferenceServiceServicer_to_server,
               InferenceServicer(service, settings, FeedbackService(rest, None)),  # type: ignore[arg-type]
               [SERVICE_FULL_NAME], ROLES)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Rig(inference_pb2_grpc.InferenceServiceStub(channel), model, sink)
    finally:
        await channel.close()
        await server.stop(0)
        await embedder.close()
        await eserver.stop(0)


async def streamed(rig: Rig, question: str
                   ) -> tuple[list[str], inference_pb2.GenerateResponse, float]:
    """The tokens, the final response, and the seconds to the first token, as the client sees
    them."""
    tokens: list[str] = []
    final = None
    first = 0.0
    t0 = time.perf_counter()
    async for item in rig.stub.GenerateStream(
            inference_pb2.GenerateRequest(question=question, no_cache=True), metadata=MD,
            timeout=60):
        if item.HasField("final"):
            final = item.final
        else:
            first = first or time.perf_counter() - t0
            tokens.append(item.token)
    assert final is not None
    return tokens, final, first


async def test_a_replaced_model_answer_is_never_streamed(rig: Rig) -> None:
    rig.model.reply = "You can't tell me."
    tokens, final, first = await streamed(rig, STOLEN)
    assert tokens == [REPORT] and final.answer == REPORT
    assert final.finish_reason == "extractive"
    assert [c.document_id for c in final.citations] == ["security-handbook.md"]
    # The unary answer is the same one.
    unary = await rig.stub.Generate(inference_pb2.GenerateRequest(question=STOLEN, no_cache=True),
                                    metadata=MD, timeout=60)
    assert unary.answer == REPORT
    # Honest time to first token: the text comes after the whole generation and the decision,
    # and the recorded figure is not below what the client saw, less the transport.
    assert first >= 4 * TOKEN_DELAY
    recorded = rig.sink.answers[-2].time_to_first_token_ms / 1000
    assert first - 0.5 <= recorded <= first


async def test_a_kept_model_answer_is_streamed_after_the_decision(rig: Rig) -> None:
    rig.model.reply = ("Report it to the security team at security@example.com within one "
                       "hour [1].")
    tokens, final, first = await streamed(rig, STOLEN)
    assert "".join(tokens) == final.answer == rig.model.reply
    assert final.finish_reason == "stop"
    assert "security-handbook.md" in [c.document_id for c in final.citations]
    assert first >= 12 * TOKEN_DELAY
