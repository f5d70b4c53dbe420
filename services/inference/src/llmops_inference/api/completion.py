"""InferenceCompleted: built and published in the background once an answer is finished.

The answer goes to the caller at once; a task of its own then redacts the question and the
answer (safety Redact), scores the answer's quality (one embedding call, domain/quality.py)
and publishes the event, keyed by tenant, with the answer's request id as its event id.
What fails along the way is logged and left out, never the whole event: a failed redaction
publishes no text (never unredacted text), a failed or slow scoring step publishes no quality
fields. Only a publish that fails loses the event (logged and counted). With too many events
in flight (Kafka down), new ones are dropped and counted rather than piling up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from llmops.inference.v1 import inference_pb2
from llmops_inference.api.grpc import OUTCOME, to_guarded
from llmops_inference.domain.model import Answer, Passage, Quality, Question
from llmops_inference.domain.quality import QualityScorer
from llmops_inference.ports import Guard
from llmops_kit import events
from llmops_kit.context import deadline_var
from llmops_kit.kafka import EventBus

log = logging.getLogger(__name__)

PRODUCER = "inference"


def _citation(p: Passage) -> inference_pb2.Citation:
    return inference_pb2.Citation(document_id=p.document_id, chunk_id=p.chunk_id, score=p.score,
                                  marker=p.marker, title=p.title)


def completed_event(question: Question, answer: Answer, streamed: bool, redacted_question: str,
                    redacted_answer: str, quality: Quality) -> inference_pb2.InferenceCompleted:
    stages = {k: v for k, v in answer.stages_ms.items() if k != "total"}
    unchecked = inference_pb2.SAFETY_OUTCOME_UNSPECIFIED
    event = inference_pb2.InferenceCompleted(
        envelope=events.make_envelope(PRODUCER, tenant=question.tenant,
                                      event_id=answer.request_id or None),
        model_version=answer.model_version,
        prompt_version=answer.prompt.label if answer.prompt else "",
        stages=[inference_pb2.StageLatency(stage=k, milliseconds=v) for k, v in stages.items()],
        time_to_first_token_ms=answer.time_to_first_token_ms,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        retrieved_chunk_ids=[p.chunk_id for p in answer.retrieved],
        redacted_question=redacted_question,
        redacted_answer=redacted_answer,
        input_safety=OUTCOME[answer.input_safety] if "input" in answer.checked else unchecked,
        output_safety=OUTCOME[answer.output_safety] if "output" in answer.checked else unchecked,
        cached=answer.cached,
        streamed=streamed,
        total_ms=answer.stages_ms.get("total", 0.0),
        guarded_passages=[to_guarded(g) for g in answer.guarded],
        citations=[_citation(p) for p in answer.passages],
        best_retrieval_score=quality.best_retrieval_score,
        answer_sentences=quality.answer_sentences,
        supported_sentences=quality.supported_sentences,
        question_embedding=quality.question_embedding,
        embedding_model=quality.embedding_model,
        error=answer.error,
        refusal=answer.refusal,
        canary=bool(answer.model and answer.model.canary),
    )
    if quality.groundedness is not None:
        event.groundedness = quality.groundedness
    return event


@dataclass
class CompletionStats:
    published: int = 0
    failed: int = 0
    dropped: int = 0
    unscored: int = 0


def _why(exc: BaseException) -> str:
    """A failure's stable reason for logs: never its message, which may quote the text."""
    return getattr(exc, "reason", None) or type(exc).__name__


class BusCompletionSink:
    """CompletionSink over the kit's EventBus (see module doc)."""

    def __init__(self, bus: EventBus, guard: Guard, scorer: QualityScorer | None = None, *,
                 quality_timeout: float = 10.0, publish_timeout: float = 30.0,
                 max_in_flight: int = 1000,
                 event_type: events.EventType[inference_pb2.InferenceCompleted]
                 = events.INFERENCE_COMPLETED) -> None:
        self.bus = bus
        self.guard = guard
        self.scorer = scorer
        self.quality_timeout = quality_timeout
        self.publish_timeout = publish_timeout
        self.max_in_flight = max_in_flight
        self.event_type = event_type
        self.stats = CompletionStats()
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, question: Question, answer: Answer, streamed: bool) -> None:
        if len(self._tasks) >= self.max_in_flight:
            self.stats.dropped += 1
            log.warning("inference-completed dropped: %d in flight (is Kafka down?)",
                        len(self._tasks), extra={"events_dropped": self.stats.dropped})
            return
        # The task copies the request's context: its tenant, trace id and key (dependencies
        # are called as the caller) go with it; its deadline is reset inside.
        task = asyncio.create_task(self._complete(question, answer, streamed),
                                   name=f"inference-completed-{answer.request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def event(self, question: Question, answer: Answer, streamed: bool
                    ) -> inference_pb2.InferenceCompleted:
        texts = await asyncio.gather(self.guard.redact(question.text),
                                     self.guard.redact(answer.text), return_exceptions=True)
        failed = next((t for t in texts if isinstance(t, BaseException)), None)
        if failed is not None:
            log.warning("inference-completed %s goes without its text: redaction failed (%s)",
                        answer.request_id, _why(failed))
            return completed_event(question, answer, streamed, "", "", Quality())
        rq, ra = (str(t) for t in texts)
        quality = Quality()
        if self.scorer is not None:
            try:
                quality = await asyncio.wait_for(self.scorer.assess(answer, rq, ra),
                                                 self.quality_timeout)
                log.info("answer %s: %d of %d sentences supported by %d of %d passages, best "
                         "retrieval %.3f", answer.request_id, quality.supported_sentences,
                         quality.answer_sentences, len(answer.passages), len(answer.retrieved),
                         quality.best_retrieval_score)
            except Exception as exc:
                self.stats.unscored += 1
                log.warning("inference-completed %s goes without quality scores: %s",
                            answer.request_id, _why(exc))
        return completed_event(question, answer, streamed, rq, ra, quality)

    async def _complete(self, question: Question, answer: Answer, streamed: bool) -> None:
        # The answer is out: the caller's deadline no longer bounds this work (the kit's
        # call_peer would refuse every call once it passed).
        deadline_var.set(None)
        try:
            event = await self.event(question, answer, streamed)
            await asyncio.wait_for(
                self.bus.publish(self.event_type, event, question.tenant.encode()),
                self.publish_timeout)
        except Exception as exc:
            self.stats.failed += 1
            log.warning("inference-completed %s not published: %s", answer.request_id, _why(exc),
                        extra={"events_failed": self.stats.failed})
        else:
            self.stats.published += 1

    async def drain(self, timeout: float = 30.0) -> None:
        """Waits (bounded) for the events in flight, before the bus stops."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True),
                                       timeout)
