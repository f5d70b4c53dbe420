"""QuestionResult <-> llmops.registry.v1.EvaluationResult (the runner sends, the registry
stores and publishes, the CLI reads back: one conversion for all three)."""

from __future__ import annotations

from llmops.registry.v1 import evaluation_pb2 as pb
from llmops_kit.evaluation.runs import QuestionResult


def result_pb(r: QuestionResult) -> pb.EvaluationResult:
    msg = pb.EvaluationResult(
        question_id=r.question_id, question=r.question, answerable=r.answerable,
        answer=r.answer, holds_fact=r.holds_fact, cited=r.cited, latency_ms=r.latency_ms,
        prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens, safety=r.safety,
        blocked=r.blocked, refusal=r.refusal, error=r.error)
    if r.groundedness is not None:
        msg.groundedness = r.groundedness
    return msg


def result_from_pb(msg: pb.EvaluationResult) -> QuestionResult:
    return QuestionResult(
        question_id=msg.question_id, question=msg.question, answerable=msg.answerable,
        answer=msg.answer, holds_fact=msg.holds_fact, cited=msg.cited,
        groundedness=msg.groundedness if msg.HasField("groundedness") else None,
        latency_ms=msg.latency_ms, prompt_tokens=msg.prompt_tokens,
        completion_tokens=msg.completion_tokens, safety=msg.safety, blocked=msg.blocked,
        refusal=msg.refusal, error=msg.error)
