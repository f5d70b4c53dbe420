"""Platform events -> observability rows (the edge: protobuf in, plain rows out).

Every event becomes one `events` row; the typed tables get theirs from the events that feed
them. Ids come from the envelope (answers.id = the request id = event_id) and every row's
version is the event's occurred_at in ms, so the same event always makes the same rows and
a replay is invisible under FINAL.

Privacy: only redacted or non-textual fields are stored. Free text that no contract promises
is redacted (a DocumentSubmitted's source, registry reasons and descriptions, safety reasons)
goes through llmops_pii here; so do the answers' question and answer and feedback comments,
although their contracts call them redacted (low volume, and the most sensitive text). The
safety excerpt is the safety service's own redaction and is kept as it is (verdicts are the
largest stream).
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from aiokafka import ConsumerRecord
from google.protobuf.message import Message

from llmops.admin.v1 import admin_pb2
from llmops.common.v1 import envelope_pb2
from llmops.embedding.v1 import events_pb2 as embedding_events
from llmops.inference.v1 import inference_pb2
from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops.ingestion.v1 import ingestion_pb2
from llmops.observability.v1 import observability_pb2
from llmops.registry.v1 import evaluation_pb2, registry_pb2
from llmops.safety.v1 import safety_pb2
from llmops.trainer.v1 import pipeline_pb2, trainer_pb2
from llmops.vectorstore.v1 import events_pb2 as vectorstore_events
from llmops_kit import dead_letters, events
from llmops_observability.rows import UINT32_MAX, Rows, from_ms
from llmops_pii import redact_pii

OPERATION_CHAT = "chat"  # OpenTelemetry gen_ai.operation.name of an answer


@dataclass(frozen=True)
class MappingOptions:
    weak_retrieval_threshold: float = 0.25
    corpus_sample_rate: float = 0.1


# Short texts repeat (safety reasons, sources, registry reasons): their redactions are cached
# per day (a redaction may depend on the date, e.g. the age check of a Korean RRN).
_CACHED_CHARS = 256
_DAY_ZERO = date(1970, 1, 1).toordinal()


@functools.lru_cache(maxsize=8192)
def _redacted_short(text: str, day: int) -> str:
    return redact_pii(text, today=date.fromordinal(day)).text


def redacted(text: str) -> str:
    if not text:
        return ""
    if len(text) <= _CACHED_CHARS:
        return _redacted_short(text, _DAY_ZERO + int(time.time() // 86400))
    return redact_pii(text).text


def sampled(chunk_id: str, rate: float) -> bool:
    """Whether a chunk is in the corpus sample: a hash of its id under `rate`, the same answer
    on every replica and every replay."""
    if rate >= 1.0:
        return True
    digest = hashlib.blake2b(chunk_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


def occurred(env: envelope_pb2.Envelope, record: ConsumerRecord[Any, Any] | None) -> datetime:
    """The event's time: the envelope's occurred_at, else the record's broker timestamp."""
    return from_ms(occurred_ms(env, record))


def occurred_ms(env: envelope_pb2.Envelope, record: ConsumerRecord[Any, Any] | None) -> int:
    """occurred() in epoch milliseconds (the rows' `ts` and `version`), without a datetime."""
    at = env.occurred_at
    seconds, nanos = at.seconds, at.nanos
    if seconds or nanos:
        return seconds * 1000 + nanos // 1_000_000
    return record.timestamp if record is not None and record.timestamp else 0


_ENUM_NAMES: dict[tuple[Callable[[Any], str], int], str] = {}


def _enum(enum_name: Callable[[Any], str], value: int, prefix: str) -> str:
    """An enum value's name without its prefix, lower case ('' for UNSPECIFIED); a value this
    build does not know stays its number. Cached: verdicts and answers map several per event."""
    key = (enum_name, value)
    cached = _ENUM_NAMES.get(key)
    if cached is not None:
        return cached
    try:
        name = enum_name(value).removeprefix(prefix).lower()
    except ValueError:
        return str(value)
    name = "" if name == "unspecified" else name
    if len(_ENUM_NAMES) < 4096:
        _ENUM_NAMES[key] = name
    return name


class Head(NamedTuple):
    """What every row of one event shares; `ts` is epoch ms and so is `version` (one value:
    the same event, the same version)."""

    tenant: str
    ts: int
    event_id: str
    trace_id: str

    @property
    def version(self) -> int:
        return self.ts


# Head(...) goes through a Python-level __new__; this is the same tuple at half the cost.
_new_head: Callable[[tuple[str, int, str, str]], Head] = functools.partial(tuple.__new__, Head)


def head(event: Message, record: ConsumerRecord[Any, Any] | None) -> Head:
    env: envelope_pb2.Envelope = event.envelope  # type: ignore[attr-defined]
    return _new_head((env.tenant_id, occurred_ms(env, record), env.event_id, env.trace_id))


def add_event(rows: Rows, topic: str, event: Message, record: ConsumerRecord[Any, Any] | None,
              options: MappingOptions) -> None:
    """The rows of one decoded event of `topic` (positional: COLUMNS' order)."""
    env: envelope_pb2.Envelope = event.envelope  # type: ignore[attr-defined]
    h = _new_head((env.tenant_id, occurred_ms(env, record), env.event_id, env.trace_id))
    size = len(record.value or b"") if record is not None else event.ByteSize()
    # events: tenant, ts, id, topic, producer, bytes, trace_id, version
    rows.append("events", (h.tenant, h.ts, h.event_id, topic, env.producer,
                           size if size <= UINT32_MAX else UINT32_MAX, h.trace_id, h.ts))
    typed = TYPED.get(type(event))
    if typed is not None:
        typed(rows, h, event, options)


# ------------------------------------------------------------------ answers and scores


def _answer(rows: Rows, h: Head, ev: inference_pb2.InferenceCompleted,
            options: MappingOptions) -> None:
    stages = {s.stage: s.milliseconds for s in ev.stages}
    outcome = inference_pb2.SafetyOutcome.Name
    groundedness = ev.groundedness if ev.HasField("groundedness") else None
    rows.add(
        "answers", tenant=h.tenant, ts=h.ts, id=h.event_id, trace_id=h.trace_id,
        operation_name=OPERATION_CHAT, response_model=ev.model_version,
        prompt_version=ev.prompt_version, input_tokens=ev.prompt_tokens,
        output_tokens=ev.completion_tokens,
        usage={"input_tokens": ev.prompt_tokens, "output_tokens": ev.completion_tokens},
        time_to_first_token_ms=ev.time_to_first_token_ms, duration_ms=ev.total_ms,
        stage_ms=stages, streamed=int(ev.streamed), cached=int(ev.cached), error=ev.error,
        input_safety=_enum(outcome, ev.input_safety, "SAFETY_OUTCOME_"),
        output_safety=_enum(outcome, ev.output_safety, "SAFETY_OUTCOME_"),
        guarded_passages=min(len(ev.guarded_passages), 65535),
        retrieved_chunk_ids=list(ev.retrieved_chunk_ids),
        cited_document_ids=[c.document_id for c in ev.citations],
        cited_chunk_ids=[c.chunk_id for c in ev.citations],
        best_retrieval_score=ev.best_retrieval_score, groundedness=groundedness,
        answer_sentences=min(ev.answer_sentences, 65535),
        supported_sentences=min(ev.supported_sentences, 65535),
        question=redacted(ev.redacted_question), answer=redacted(ev.redacted_answer),
        embedding_model=ev.embedding_model, question_embedding=list(ev.question_embedding),
        version=h.version)

    def score(source: str, name: str, value: float) -> None:
        rows.add("scores", tenant=h.tenant, ts=h.ts, id=f"{h.event_id}/{source}/{name}",
                 request_id=h.event_id, source=source, name=name, value=float(value),
                 comment="", response_model=ev.model_version, run_id="", version=h.version)

    if groundedness is not None:
        score("groundedness", "groundedness", groundedness)
    # Only answers that retrieved count for weak retrieval (not blocked inputs or rag=false).
    if "retrieval" in stages or ev.retrieved_chunk_ids:
        score("retrieval", "best_retrieval_score", ev.best_retrieval_score)
        weak = ev.best_retrieval_score < options.weak_retrieval_threshold
        score("retrieval", "weak_retrieval", 1.0 if weak else 0.0)


def _feedback(rows: Rows, h: Head, ev: inference_pb2.FeedbackSubmitted,
              options: MappingOptions) -> None:
    rows.add("scores", tenant=h.tenant, ts=h.ts, id=h.event_id, request_id=ev.request_id,
             source="feedback", name="rating", value=float(ev.rating),
             comment=redacted(ev.redacted_comment), response_model="", run_id="",
             version=h.version)


def _evaluation(rows: Rows, h: Head, ev: evaluation_pb2.EvaluationCompleted,
                options: MappingOptions) -> None:
    """One `scores` row per question and metric of an evaluation run (source "evaluation",
    request_id = the question's id, run_id = the run's id)."""
    run = ev.run
    model = f"{run.model_name}@{run.model_version}"
    for r in run.results:
        values: dict[str, float | None] = {
            # Fact and citation only count for questions the set expects an answer to.
            "holds_fact": float(r.holds_fact) if r.answerable else None,
            "cited": float(r.cited) if r.answerable else None,
            "groundedness": r.groundedness if r.HasField("groundedness") else None,
            "latency_ms": None if r.error else r.latency_ms,
            "refused": float(bool(r.refusal)),
            "blocked": float(r.blocked),
            "error": float(bool(r.error)),
        }
        for name, value in values.items():
            if value is not None:
                rows.add("scores", tenant=h.tenant, ts=h.ts, id=f"{run.id}/{r.question_id}/{name}",
                         request_id=r.question_id, source="evaluation", name=name,
                         value=float(value), comment="", response_model=model, run_id=run.id,
                         version=h.version)


# ------------------------------------------------------------------ documents


def _doc(rows: Rows, h: Head, event: str, document_id: str, *, doc_version: int = 0,
         chunks: int = 0, total_chunks: int = 0, tokens: int = 0, size: int = 0,
         batch_index: int = 0, batch_count: int = 0, source: str = "",
         content_type: str = "") -> None:
    rows.add("document_events", tenant=h.tenant, ts=h.ts, id=h.event_id, event=event,
             document_id=document_id, doc_version=doc_version, chunks=chunks,
             total_chunks=total_chunks, tokens=min(tokens, UINT32_MAX), bytes=size,
             batch_index=batch_index, batch_count=batch_count, source=source,
             content_type=content_type, version=h.version)


def _submitted(rows: Rows, h: Head, ev: ingestion_events.DocumentSubmitted,
               options: MappingOptions) -> None:
    # Published before ingestion redacts anything: only sizes and redacted names are kept.
    doc = ev.document
    _doc(rows, h, "submitted", redacted(doc.document_id), size=len(doc.content),
         source=redacted(doc.source),
         content_type=_enum(ingestion_pb2.ContentType.Name, doc.content_type, "CONTENT_TYPE_"))


def _chunks_created(rows: Rows, h: Head, ev: ingestion_events.ChunksCreated,
                    options: MappingOptions) -> None:
    doc = ev.document
    _doc(rows, h, "chunks_created", doc.document_id, doc_version=doc.version,
         chunks=len(ev.chunks), total_chunks=doc.total_chunks,
         tokens=sum(c.token_count for c in ev.chunks),
         size=sum(len(c.text.encode()) for c in ev.chunks), batch_index=ev.batch_index,
         batch_count=ev.batch_count, source=redacted(doc.source))


def _chunk_vectors(rows: Rows, h: Head, ev: embedding_events.ChunkVectors,
                   options: MappingOptions) -> None:
    doc = ev.document
    _doc(rows, h, "chunks_embedded", doc.document_id, doc_version=doc.version,
         chunks=len(ev.chunks), total_chunks=doc.total_chunks, batch_index=ev.batch_index,
         batch_count=ev.batch_count)
    for ec in ev.chunks:
        if ec.chunk.chunk_id and sampled(ec.chunk.chunk_id, options.corpus_sample_rate):
            rows.add("corpus_sample", tenant=h.tenant, ts=h.ts, id=ec.chunk.chunk_id,
                     document_id=doc.document_id, embedding_model=ev.model,
                     embedding=list(ec.vector), version=h.version)


def _chunks_indexed(rows: Rows, h: Head, ev: vectorstore_events.ChunksIndexed,
                    options: MappingOptions) -> None:
    _doc(rows, h, "chunks_indexed", ev.document_id, doc_version=ev.version,
         chunks=len(ev.chunk_ids), total_chunks=ev.total_chunks, batch_index=ev.batch_index,
         batch_count=ev.batch_count)


def _document_deleted(rows: Rows, h: Head, ev: ingestion_events.DocumentDeleted,
                      options: MappingOptions) -> None:
    _doc(rows, h, "deleted", ev.document_id, doc_version=ev.up_to_version)


# ------------------------------------------------------------------ safety and registry


def _verdict(rows: Rows, h: Head, ev: safety_pb2.SafetyVerdictIssued,
             options: MappingOptions) -> None:
    findings = ev.findings
    reasons = ev.reasons
    # safety_verdicts: tenant, ts, id, direction, verdict, finding_categories, finding_rules,
    # scores, reasons, toxicity_backend, text_chars, redacted_excerpt, version
    rows.append("safety_verdicts", (
        h.tenant, h.ts, h.event_id,
        _enum(_DIRECTION_NAME, ev.direction, "DIRECTION_"),
        _enum(_VERDICT_NAME, ev.verdict, "VERDICT_"),
        [f.category for f in findings] if findings else [],
        [f.rule for f in findings] if findings else [],
        {k: scores[k] for k in scores} if (scores := ev.scores) else {},
        [redacted(r) for r in reasons] if reasons else [],
        ev.toxicity_backend, ev.text_chars, ev.redacted_excerpt, h.ts))


_DIRECTION_NAME = safety_pb2.Direction.Name
_VERDICT_NAME = safety_pb2.Verdict.Name


def _registry(rows: Rows, h: Head, *, tenant: str, kind: str, name: str, pointer: str = "",
              from_version: int = 0, to_version: int = 0, actor: str = "", reason: str = "",
              sequence: int = 0, fmt: str = "", base_model: str = "") -> None:
    # tenant is the scope of what changed ('' = shared), not the caller's.
    rows.add("registry_changes", tenant=tenant, ts=h.ts, id=h.event_id, kind=kind, name=name,
             pointer=pointer, from_version=from_version, to_version=to_version, actor=actor,
             reason=redacted(reason), sequence=sequence, format=fmt, base_model=base_model,
             version=h.version)


def _model_created(rows: Rows, h: Head, ev: registry_pb2.ModelVersionCreated,
                   options: MappingOptions) -> None:
    mv = ev.model_version
    _registry(rows, h, tenant=mv.tenant_id, kind="model_version_created", name=mv.name,
              to_version=mv.version, actor=mv.created_by, fmt=mv.format,
              base_model=mv.base_model)


def _alias_changed(rows: Rows, h: Head, ev: registry_pb2.ModelAliasChanged,
                   options: MappingOptions) -> None:
    c = ev.change
    _registry(rows, h, tenant=c.tenant_id, kind="alias_changed", name=ev.name, pointer=c.alias,
              from_version=c.from_version, to_version=c.to_version, actor=c.actor,
              reason=c.reason, sequence=c.sequence, fmt=ev.model_version.format,
              base_model=ev.model_version.base_model)


def _prompt_created(rows: Rows, h: Head, ev: registry_pb2.PromptVersionCreated,
                    options: MappingOptions) -> None:
    pv = ev.prompt_version
    _registry(rows, h, tenant=pv.tenant_id, kind="prompt_version_created", name=pv.name,
              to_version=pv.version, actor=pv.created_by, reason=pv.description)


def _label_changed(rows: Rows, h: Head, ev: registry_pb2.PromptLabelChanged,
                   options: MappingOptions) -> None:
    c = ev.change
    _registry(rows, h, tenant=c.tenant_id, kind="label_changed", name=ev.name, pointer=c.label,
              from_version=c.from_version, to_version=c.to_version, actor=c.actor,
              reason=c.reason, sequence=c.sequence)


def _training_step(rows: Rows, h: Head, ev: pipeline_pb2.ContinuousTrainingStep,
                   options: MappingOptions) -> None:
    rows.add("training_steps", tenant=h.tenant, ts=h.ts, id=h.event_id, loop_id=ev.loop_id,
             trigger=ev.trigger, trigger_ref=ev.trigger_ref, step=ev.step,
             sequence=ev.sequence, dataset_id=ev.dataset_id, job_id=ev.job_id,
             model_name=ev.model_name, model_version=ev.model_version,
             production_version=ev.production_version, eval_dataset=ev.eval_dataset,
             reason=redacted(ev.reason), final=1 if ev.final else 0, version=h.version)


Typed = Callable[[Rows, Head, Any, MappingOptions], None]
TYPED: dict[type[Message], Typed] = {
    inference_pb2.InferenceCompleted: _answer,
    inference_pb2.FeedbackSubmitted: _feedback,
    ingestion_events.DocumentSubmitted: _submitted,
    ingestion_events.ChunksCreated: _chunks_created,
    embedding_events.ChunkVectors: _chunk_vectors,
    vectorstore_events.ChunksIndexed: _chunks_indexed,
    ingestion_events.DocumentDeleted: _document_deleted,
    safety_pb2.SafetyVerdictIssued: _verdict,
    registry_pb2.ModelVersionCreated: _model_created,
    registry_pb2.ModelAliasChanged: _alias_changed,
    registry_pb2.PromptVersionCreated: _prompt_created,
    registry_pb2.PromptLabelChanged: _label_changed,
    evaluation_pb2.EvaluationCompleted: _evaluation,
    pipeline_pb2.ContinuousTrainingStep: _training_step,
}
# Into `events` only: DriftDetected (the drift monitor writes `drift` itself), the trainer's
# events (their tables come with the trainer) and TenantDeleted (it deletes, see api/events.py).
EVENTS_ONLY = (observability_pb2.DriftDetected, trainer_pb2.TrainingJobRequested,
               trainer_pb2.TrainingProgress, admin_pb2.TenantDeleted)


# ------------------------------------------------------------------ dead letters


def _header(record: ConsumerRecord[Any, Any], name: str) -> str:
    for key, value in record.headers or ():
        if key == name:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return ""


def add_dead_letter(rows: Rows, record: ConsumerRecord[Any, Any]) -> None:
    """One record of a `.dlq` topic (llmops_kit.dead_letters' headers), counted, not decoded."""
    ts = record.timestamp or 0
    size = _header(record, dead_letters.HEADER_DLQ_SIZE)
    rows.add(
        "dead_letters", tenant=redacted(_header(record, events.HEADER_TENANT))[:128], ts=ts,
        id=f"{record.topic}/{record.partition}/{record.offset}", dlq_topic=record.topic,
        source_topic=_header(record, dead_letters.HEADER_DLQ_TOPIC)
        or record.topic.removesuffix(".dlq"),
        reason=_header(record, dead_letters.HEADER_DLQ_REASON) or "UNKNOWN",
        consumer_group=_header(record, dead_letters.HEADER_DLQ_GROUP),
        error=dead_letters.clean(_header(record, dead_letters.HEADER_DLQ_ERROR),
                                 dead_letters.MAX_ERROR_CHARS),
        payload_bytes=int(size) if size.isdigit() else len(record.value or b""),
        version=ts)
