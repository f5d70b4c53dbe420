"""Every topic of the platform, versioned `llmops.<domain>.<event>.v<N>`."""

from __future__ import annotations

DOCUMENT_SUBMITTED = "llmops.ingestion.document-submitted.v1"
DOCUMENT_DELETED = "llmops.ingestion.document-deleted.v1"
CHUNKS_CREATED = "llmops.ingestion.chunks-created.v1"
CHUNK_VECTORS = "llmops.embedding.chunk-vectors.v1"
CHUNKS_INDEXED = "llmops.vectorstore.chunks-indexed.v1"
SAFETY_VERDICT_ISSUED = "llmops.safety.verdict-issued.v1"
MODEL_VERSION_CREATED = "llmops.registry.model-version-created.v1"
MODEL_ALIAS_CHANGED = "llmops.registry.alias-changed.v1"
PROMPT_VERSION_CREATED = "llmops.registry.prompt-version-created.v1"
PROMPT_LABEL_CHANGED = "llmops.registry.prompt-label-changed.v1"
EVALUATION_COMPLETED = "llmops.registry.evaluation-completed.v1"
INFERENCE_COMPLETED = "llmops.inference.completed.v1"
FEEDBACK_SUBMITTED = "llmops.inference.feedback-submitted.v1"
TRAINING_JOB_REQUESTED = "llmops.trainer.job-requested.v1"
TRAINING_PROGRESS = "llmops.trainer.progress.v1"
DRIFT_DETECTED = "llmops.observability.drift-detected.v1"
TENANT_DELETED = "llmops.admin.tenant-deleted.v1"
# Steps of the trainer's continuous-training loops (protos/llmops/trainer/v1/pipeline.proto).
CONTINUOUS_TRAINING_STEP = "llmops.trainer.continuous-training.v1"

ALL = (
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


def dead_letter(topic: str) -> str:
    """Dead-letter topic of a topic: the same name with a `.dlq` suffix."""
    return f"{topic}.dlq"
