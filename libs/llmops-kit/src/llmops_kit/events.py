"""Envelopes, the event registry and protobuf encoding at the bus edge.

Every event message has the shared Envelope as field 1 (`envelope`). Producers set
`schema_version`; consumers refuse versions they do not know (dead-letter) rather than
misreading them. The same facts travel as Kafka headers so tools can route and inspect
events without decoding them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from llmops.admin.v1 import admin_pb2
from llmops.common.v1 import envelope_pb2
from llmops.embedding.v1 import events_pb2 as embedding_events
from llmops.inference.v1 import inference_pb2
from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops.observability.v1 import observability_pb2
from llmops.registry.v1 import evaluation_pb2, registry_pb2
from llmops.safety.v1 import safety_pb2
from llmops.trainer.v1 import pipeline_pb2, trainer_pb2
from llmops.vectorstore.v1 import events_pb2 as vectorstore_events
from llmops_kit import topics
from llmops_kit.context import current_tenant, current_trace_id, new_trace_id
from llmops_kit.errors import PoisonMessage

M = TypeVar("M", bound=Message)

HEADER_EVENT_TYPE = "x-event-type"
HEADER_SCHEMA_VERSION = "x-schema-version"
HEADER_TENANT = "x-tenant"
HEADER_TRACE_ID = "x-trace-id"
HEADER_EVENT_ID = "x-event-id"


@dataclass(frozen=True)
class EventType(Generic[M]):
    topic: str
    message: type[M]
    # Versions this build can decode; the first is the one it produces.
    schema_versions: tuple[int, ...] = (1,)

    @property
    def name(self) -> str:
        return self.message.DESCRIPTOR.full_name

    @property
    def current_version(self) -> int:
        return self.schema_versions[0]


DOCUMENT_SUBMITTED = EventType(topics.DOCUMENT_SUBMITTED, ingestion_events.DocumentSubmitted)
DOCUMENT_DELETED = EventType(topics.DOCUMENT_DELETED, ingestion_events.DocumentDeleted)
CHUNKS_CREATED = EventType(topics.CHUNKS_CREATED, ingestion_events.ChunksCreated)
CHUNK_VECTORS = EventType(topics.CHUNK_VECTORS, embedding_events.ChunkVectors)
CHUNKS_INDEXED = EventType(topics.CHUNKS_INDEXED, vectorstore_events.ChunksIndexed)
SAFETY_VERDICT_ISSUED = EventType(topics.SAFETY_VERDICT_ISSUED, safety_pb2.SafetyVerdictIssued)
MODEL_VERSION_CREATED = EventType(topics.MODEL_VERSION_CREATED, registry_pb2.ModelVersionCreated)
MODEL_ALIAS_CHANGED = EventType(topics.MODEL_ALIAS_CHANGED, registry_pb2.ModelAliasChanged)
PROMPT_VERSION_CREATED = EventType(
    topics.PROMPT_VERSION_CREATED, registry_pb2.PromptVersionCreated
)
PROMPT_LABEL_CHANGED = EventType(topics.PROMPT_LABEL_CHANGED, registry_pb2.PromptLabelChanged)
EVALUATION_COMPLETED = EventType(topics.EVALUATION_COMPLETED, evaluation_pb2.EvaluationCompleted)
INFERENCE_COMPLETED = EventType(topics.INFERENCE_COMPLETED, inference_pb2.InferenceCompleted)
FEEDBACK_SUBMITTED = EventType(topics.FEEDBACK_SUBMITTED, inference_pb2.FeedbackSubmitted)
TRAINING_JOB_REQUESTED = EventType(
    topics.TRAINING_JOB_REQUESTED, trainer_pb2.TrainingJobRequested
)
TRAINING_PROGRESS = EventType(topics.TRAINING_PROGRESS, trainer_pb2.TrainingProgress)
DRIFT_DETECTED = EventType(topics.DRIFT_DETECTED, observability_pb2.DriftDetected)
TENANT_DELETED = EventType(topics.TENANT_DELETED, admin_pb2.TenantDeleted)
CONTINUOUS_TRAINING_STEP = EventType(
    topics.CONTINUOUS_TRAINING_STEP, pipeline_pb2.ContinuousTrainingStep
)

REGISTRY: dict[str, EventType[Message]] = {
    et.topic: et  # type: ignore[misc]
    for et in (
        DOCUMENT_SUBMITTED,
        DOCUMENT_DELETED,
        CHUNKS_CREATED,
        CHUNK_VECTORS,
        CHUNKS_INDEXED,
        SAFETY_VERDICT_ISSUED,
        MODEL_VERSION_CREATED,
        MODEL_ALIAS_CHANGED,
        PROMPT_VERSION_CREATED,
        PROMPT_LABEL_CHANGED,
        EVALUATION_COMPLETED,
        INFERENCE_COMPLETED,
        FEEDBACK_SUBMITTED,
        TRAINING_JOB_REQUESTED,
        TRAINING_PROGRESS,
        DRIFT_DETECTED,
        TENANT_DELETED,
        CONTINUOUS_TRAINING_STEP,
    )
}


def make_envelope(
    producer: str,
    tenant: str | None = None,
    trace_id: str | None = None,
    schema_version: int = 1,
    event_id: str | None = None,
) -> envelope_pb2.Envelope:
    """A new envelope; tenant and trace id default to the ones bound to the current request."""
    env = envelope_pb2.Envelope(
        event_id=event_id or str(uuid.uuid4()),
        tenant_id=tenant or current_tenant() or "",
        trace_id=trace_id or current_trace_id() or new_trace_id(),
        schema_version=schema_version,
        producer=producer,
    )
    env.occurred_at.FromDatetime(datetime.now(UTC))
    return env


def headers_for(event: Message, event_type: EventType[M]) -> dict[str, str]:
    env: envelope_pb2.Envelope = event.envelope  # type: ignore[attr-defined]
    return {
        HEADER_EVENT_TYPE: event_type.name,
        HEADER_SCHEMA_VERSION: str(env.schema_version or event_type.current_version),
        HEADER_TENANT: env.tenant_id,
        HEADER_TRACE_ID: env.trace_id,
        HEADER_EVENT_ID: env.event_id,
    }


MAX_TENANT_CHARS = 128


def decode(event_type: EventType[M], payload: bytes | None) -> M:
    """Parses and validates one event; raises PoisonMessage with a stable reason."""
    if not payload:
        raise PoisonMessage("EMPTY_PAYLOAD", f"{event_type.topic}: message has no value")
    msg = event_type.message()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise PoisonMessage(
            "MALFORMED_PROTOBUF", f"{event_type.topic}: not a valid {event_type.name}: {exc}"
        ) from exc
    if not msg.HasField("envelope"):  # type: ignore[arg-type]
        raise PoisonMessage("MISSING_ENVELOPE", f"{event_type.name} has no envelope")
    env: envelope_pb2.Envelope = msg.envelope  # type: ignore[attr-defined]
    if env.schema_version not in event_type.schema_versions:
        raise PoisonMessage(
            "UNSUPPORTED_SCHEMA_VERSION",
            f"{event_type.name} schema_version={env.schema_version}, "
            f"supported {list(event_type.schema_versions)}",
        )
    if not env.event_id:
        raise PoisonMessage("MISSING_EVENT_ID", f"{event_type.name} envelope has no event_id")
    if not env.tenant_id:
        raise PoisonMessage("MISSING_TENANT", f"{event_type.name} envelope has no tenant_id")
    if len(env.tenant_id) > MAX_TENANT_CHARS or not env.tenant_id.isprintable():
        # every store keys rows by tenant: Postgres refuses NUL, columns hold 128 characters
        raise PoisonMessage("BAD_TENANT", f"{event_type.name} envelope tenant_id must be "
                                          f"1-{MAX_TENANT_CHARS} printable characters")
    return msg


def document_key(tenant: str, document_id: str) -> bytes:
    """Partition key that keeps every event of one document in order."""
    return f"{tenant}/{document_id}".encode()
