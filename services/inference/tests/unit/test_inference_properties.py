"""Property tests of the InferenceService request converter (GenerateRequest -> Question) and
the pipeline's validation behind it, with fakes for every port: arbitrary requests give an
answer or INVALID_ARGUMENT with a reason, never another exception."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from hypothesis import given, settings

from llmops.inference.v1 import inference_pb2 as pb
from llmops_inference.api.grpc import InferenceServicer
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
from llmops_inference.settings import Settings
from llmops_kit.errors import DomainError
from llmops_kit.proto_strategies import assert_client_error, messages, rpc_outcome

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=2000)
PASSAGE = Passage(1, "doc.md", "c1", "Doc", "some text", 0.9)


class Fakes:
    async def embed(self, question: str) -> list[float]:
        return [1.0, 0.0]

    async def search(self, question: str, vector: Sequence[float], top_k: int) -> list[Passage]:
        return [PASSAGE][:top_k]

    async def render(self, name: str, label: str, question: str, passages: Sequence[Passage]
                     ) -> RenderedPrompt:
        return RenderedPrompt(name, 1, "system", f"{question}")

    async def resolve(self, alias: str) -> ModelRef:
        return ModelRef("m", 1, None)

    async def resolve_version(self, version: int) -> ModelRef:
        return ModelRef("m", version, None)

    def invalidate(self, model_name: str | None = None) -> None:
        return None

    async def check(self, text: str, direction: str) -> SafetyResult:
        return SafetyResult(Verdict.ALLOW, text)

    async def redact(self, text: str) -> str:
        return text

    async def prepare(self, model: ModelRef) -> None:
        return None

    async def generate(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                       temperature: float | None, seed: int | None) -> Generation:
        return Generation("An answer [1].", 3, 4, "stop")

    async def stream(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                     temperature: float | None, seed: int | None
                     ) -> AsyncIterator[str | Generation]:
        yield "An answer [1]."
        yield Generation("An answer [1].", 3, 4, "stop")

    def submit(self, *args: Any) -> None:
        return None

    async def publish(self, feedback: Any) -> str:
        return "00000000-0000-4000-8000-000000000000"


def servicer() -> InferenceServicer:
    f = Fakes()
    service = AnswerService(f, f, f, f, f, f, AnswerCache(16, 60), Limits())  # type: ignore[arg-type]
    return InferenceServicer(service, Settings(), FeedbackService(f, f))  # type: ignore[arg-type]


async def streamed(svc: InferenceServicer, request: pb.GenerateRequest) -> list[Any]:
    return [item async for item in svc.GenerateStream(request, None)]


@PROPERTY
@given(request=messages(pb.GenerateRequest))
def test_generate_requests(request: pb.GenerateRequest) -> None:
    result = rpc_outcome(servicer().Generate(request, None))
    assert_client_error(result)
    if not isinstance(result, DomainError):
        assert result.answer == "An answer [1]."


@PROPERTY
@given(request=messages(pb.GenerateRequest))
def test_generate_stream_requests(request: pb.GenerateRequest) -> None:
    result = rpc_outcome(streamed(servicer(), request))
    assert_client_error(result)
    if not isinstance(result, DomainError):
        assert result[-1].final.answer == "An answer [1]."


@PROPERTY
@given(request=messages(pb.SubmitFeedbackRequest))
def test_submit_feedback_requests(request: pb.SubmitFeedbackRequest) -> None:
    result = rpc_outcome(servicer().SubmitFeedback(request, None))
    assert_client_error(result)
    if not isinstance(result, DomainError):
        assert result.feedback_id and request.rating in (1, -1)
