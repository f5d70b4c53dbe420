"""InferenceService over gRPC: translate, call the pipeline, translate back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops_inference.domain.canary import MAX_SESSION_CHARS, bound_session
from llmops_inference.domain.feedback import FeedbackService
from llmops_inference.domain.model import (
    Answer,
    GuardedPassage,
    InjectionAction,
    Passage,
    Question,
    Verdict,
)
from llmops_inference.domain.pipeline import AnswerService
from llmops_inference.settings import Settings
from llmops_kit.auth import Role
from llmops_kit.context import current_tenant
from llmops_kit.errors import InvalidArgument, Unauthenticated

SERVICE_FULL_NAME = "llmops.inference.v1.InferenceService"
# The least role each RPC needs (enforced by the kit's gRPC wrapper).
ROLES = {"Generate": Role.MEMBER, "GenerateStream": Role.MEMBER,
         "SubmitFeedback": Role.MEMBER}
OUTCOME = {
    Verdict.ALLOW: inference_pb2.SAFETY_OUTCOME_ALLOW,
    Verdict.REDACT: inference_pb2.SAFETY_OUTCOME_REDACT,
    Verdict.BLOCK: inference_pb2.SAFETY_OUTCOME_BLOCK,
}


def to_question(req: inference_pb2.GenerateRequest, settings: Settings) -> Question:
    tenant = current_tenant()
    if not tenant:
        raise Unauthenticated("NO_TENANT", "request has no tenant")
    return Question(
        tenant=tenant,
        text=req.question,
        model_alias=req.model_alias or settings.default_model_alias,
        prompt_name=req.prompt_name or settings.default_prompt_name,
        prompt_label=req.prompt_label or settings.default_prompt_label,
        rag=req.rag if req.HasField("rag") else True,
        top_k=req.top_k or settings.default_top_k,
        max_new_tokens=req.max_new_tokens or settings.default_max_new_tokens,
        temperature=req.temperature if req.HasField("temperature") else None,
        seed=req.seed if req.HasField("seed") else None,
        use_cache=not req.no_cache,
        model_version=req.model_version,
    )


def session_of(req: inference_pb2.GenerateRequest) -> str:
    """The request's session id (sticky canary routing); never logged or echoed back."""
    session = req.session_id
    if len(session) > MAX_SESSION_CHARS or not session.isprintable():
        raise InvalidArgument("BAD_SESSION_ID",
                              f"session_id must be at most {MAX_SESSION_CHARS} printable "
                              "characters")
    return session


PASSAGE_ACTION = {
    InjectionAction.DROPPED: inference_pb2.PASSAGE_ACTION_DROPPED,
    InjectionAction.NEUTRALISED: inference_pb2.PASSAGE_ACTION_NEUTRALISED,
}


def to_guarded(g: GuardedPassage) -> inference_pb2.GuardedPassage:
    return inference_pb2.GuardedPassage(document_id=g.document_id, chunk_id=g.chunk_id,
                                        action=PASSAGE_ACTION[g.action],
                                        injection_score=g.injection_score)


def to_citation(p: Passage) -> inference_pb2.Citation:
    return inference_pb2.Citation(document_id=p.document_id, chunk_id=p.chunk_id, score=p.score,
                                  marker=p.marker, title=p.title,
                                  excerpt=" ".join(p.text.split())[:300])


def to_response(a: Answer) -> inference_pb2.GenerateResponse:
    return inference_pb2.GenerateResponse(
        answer=a.text,
        citations=[to_citation(p) for p in a.passages],
        sources=[to_citation(p) for p in a.retrieved],
        model_version=a.model_version,
        prompt_version=a.prompt.label if a.prompt else "",
        input_safety=OUTCOME[a.input_safety],
        output_safety=OUTCOME[a.output_safety],
        blocked=a.blocked,
        prompt_tokens=a.prompt_tokens,
        completion_tokens=a.completion_tokens,
        stages=[inference_pb2.StageLatency(stage=k, milliseconds=v) for k, v in a.stages_ms.items()],
        cached=a.cached,
        finish_reason=a.finish_reason,
        guarded_passages=[to_guarded(g) for g in a.guarded],
        request_id=a.request_id,
        refusal=a.refusal,
        retrieval_score=a.retrieval_score,
    )


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, service: AnswerService, settings: Settings,
                 feedback: FeedbackService) -> None:
        self.service = service
        self.settings = settings
        self.feedback = feedback

    async def Generate(self, request: inference_pb2.GenerateRequest,
                       context: grpc.aio.ServicerContext) -> inference_pb2.GenerateResponse:
        with bound_session(session_of(request)):
            return to_response(await self.service.answer(to_question(request, self.settings)))

    async def GenerateStream(self, request: inference_pb2.GenerateRequest,
                             context: grpc.aio.ServicerContext
                             ) -> AsyncIterator[inference_pb2.GenerateStreamResponse]:
        with bound_session(session_of(request)):
            async for item in self.service.stream(to_question(request, self.settings)):
                if isinstance(item, str):
                    yield inference_pb2.GenerateStreamResponse(token=item)
                else:
                    yield inference_pb2.GenerateStreamResponse(final=to_response(item))

    async def SubmitFeedback(self, request: inference_pb2.SubmitFeedbackRequest,
                             context: grpc.aio.ServicerContext
                             ) -> inference_pb2.SubmitFeedbackResponse:
        tenant = current_tenant()
        if not tenant:
            raise Unauthenticated("NO_TENANT", "request has no tenant")
        receipt = await self.feedback.submit(tenant, request.request_id, request.rating,
                                             request.comment)
        return inference_pb2.SubmitFeedbackResponse(feedback_id=receipt.feedback_id,
                                                    comment_redacted=receipt.comment_redacted)
