"""Events of every kind, built the way their producers build them (fixture `make`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from llmops.admin.v1 import admin_pb2
from llmops.embedding.v1 import events_pb2 as embedding_events
from llmops.inference.v1 import inference_pb2
from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops.ingestion.v1 import ingestion_pb2
from llmops.observability.v1 import observability_pb2
from llmops.registry.v1 import registry_pb2
from llmops.safety.v1 import safety_pb2
from llmops.trainer.v1 import trainer_pb2
from llmops.vectorstore.v1 import events_pb2 as vectorstore_events
from llmops_kit import events
from llmops_observability.clickhouse import connect, migrate
from llmops_observability.testing import chdb_dir

WHEN = datetime(2026, 11, 30, 12, 0, 0, 250000, tzinfo=UTC)
PII_QUESTION = "My e-mail is jane.roe@example.com, what is the refund policy?"


class Factories:
    def __init__(self, tenant: str = "acme", when: datetime = WHEN) -> None:
        self.tenant = tenant
        self.when = when

    def env(self, producer: str = "test", event_id: str | None = None, tenant: str | None = None
            ) -> Any:
        env = events.make_envelope(producer, tenant=tenant or self.tenant,
                                   trace_id="trace-1", event_id=event_id or str(uuid.uuid4()))
        env.occurred_at.FromDatetime(self.when)
        return env

    def answer(self, event_id: str | None = None, **over: Any) -> inference_pb2.InferenceCompleted:
        fields: dict[str, Any] = dict(
            model_version="smollm2@3", prompt_version="rag-answer@2",
            stages=[inference_pb2.StageLatency(stage=s, milliseconds=ms) for s, ms in
                    (("input_safety", 2.0), ("embedding", 10.0), ("retrieval", 20.0),
                     ("prompt", 3.0), ("generation", 150.0), ("output_safety", 5.0))],
            time_to_first_token_ms=40.0, prompt_tokens=120, completion_tokens=30,
            retrieved_chunk_ids=["c1", "c2", "c3"], redacted_question="What is the [EMAIL] policy?",
            redacted_answer="Refunds within 30 days [1].",
            input_safety=inference_pb2.SAFETY_OUTCOME_REDACT,
            output_safety=inference_pb2.SAFETY_OUTCOME_ALLOW, cached=False, streamed=True,
            total_ms=190.0,
            guarded_passages=[inference_pb2.GuardedPassage(document_id="d9", chunk_id="c9")],
            citations=[inference_pb2.Citation(document_id="d1", chunk_id="c1", score=0.8,
                                              marker=1)],
            best_retrieval_score=0.72, groundedness=0.5, answer_sentences=2,
            supported_sentences=1, question_embedding=[0.1, 0.2, 0.3],
            embedding_model="all-MiniLM-L6-v2", error="")
        fields.update(over)
        return inference_pb2.InferenceCompleted(envelope=self.env("inference", event_id), **fields)

    def feedback(self, request_id: str, rating: int = 1, comment: str = "") -> Any:
        return inference_pb2.FeedbackSubmitted(envelope=self.env("inference"),
                                               request_id=request_id, rating=rating,
                                               redacted_comment=comment)

    def submitted(self, document_id: str = "doc-1", source: str = "docs/a.md",
                  content: bytes = b"hello world") -> Any:
        return ingestion_events.DocumentSubmitted(
            envelope=self.env("cli"), document=ingestion_pb2.Document(
                document_id=document_id, title="A", source=source, content=content,
                content_type=ingestion_pb2.CONTENT_TYPE_MARKDOWN))

    def doc_ref(self, document_id: str = "doc-1", version: int = 1, total: int = 3) -> Any:
        return ingestion_events.DocumentRef(document_id=document_id, version=version,
                                            title="A", source="docs/a.md", total_chunks=total)

    def chunks_created(self, document_id: str = "doc-1", n: int = 3) -> Any:
        return ingestion_events.ChunksCreated(
            envelope=self.env("ingestion"), document=self.doc_ref(document_id, total=n),
            chunks=[ingestion_events.Chunk(chunk_id=f"{document_id}-c{i}", index=i,
                                           text="abcd" * (i + 1), token_count=10 + i)
                    for i in range(n)], batch_index=0, batch_count=1)

    def vectors(self, document_id: str = "doc-1", n: int = 3, dims: int = 4) -> Any:
        return embedding_events.ChunkVectors(
            envelope=self.env("embedding"), document=self.doc_ref(document_id, total=n),
            chunks=[embedding_events.EmbeddedChunk(
                chunk=ingestion_events.Chunk(chunk_id=f"{document_id}-c{i}", index=i),
                vector=[float(i)] * dims) for i in range(n)],
            model="all-MiniLM-L6-v2", dimensions=dims, batch_index=0, batch_count=1)

    def indexed(self, document_id: str = "doc-1", n: int = 3) -> Any:
        return vectorstore_events.ChunksIndexed(
            envelope=self.env("vector-store"), document_id=document_id, version=1,
            chunk_ids=[f"{document_id}-c{i}" for i in range(n)], batch_index=0, batch_count=1,
            total_chunks=n)

    def doc_deleted(self, document_id: str = "doc-1", up_to: int = 0) -> Any:
        return ingestion_events.DocumentDeleted(envelope=self.env("ingestion"),
                                                document_id=document_id, up_to_version=up_to)

    def verdict(self) -> Any:
        return safety_pb2.SafetyVerdictIssued(
            envelope=self.env("safety"), direction=safety_pb2.DIRECTION_INPUT,
            verdict=safety_pb2.VERDICT_REDACT, scores={"toxicity": 0.1},
            findings=[safety_pb2.Finding(category="pii.email", rule="email", start=0, end=5)],
            toxicity_backend="lexicon", reasons=["pii found near bob@example.org"],
            text_chars=42, redacted_excerpt="My e-mail is [EMAIL]")

    def model_created(self) -> Any:
        return registry_pb2.ModelVersionCreated(
            envelope=self.env("model-registry"), model_version=registry_pb2.ModelVersion(
                name="smollm2", version=3, format="hf", base_model="SmolLM2-135M",
                created_by="system"))

    def alias_changed(self, scope: str = "") -> Any:
        return registry_pb2.ModelAliasChanged(
            envelope=self.env("model-registry"), name="smollm2",
            change=registry_pb2.AliasChange(alias="production", from_version=2, to_version=3,
                                            actor="acme", reason="better, ask joe@example.com",
                                            sequence=17, tenant_id=scope),
            model_version=registry_pb2.ModelVersion(name="smollm2", version=3, format="hf"))

    def prompt_created(self) -> Any:
        return registry_pb2.PromptVersionCreated(
            envelope=self.env("model-registry"), prompt_version=registry_pb2.PromptVersion(
                name="rag-answer", version=2, created_by="acme", description="shorter",
                tenant_id="acme"))

    def label_changed(self) -> Any:
        return registry_pb2.PromptLabelChanged(
            envelope=self.env("model-registry"), name="rag-answer",
            change=registry_pb2.PromptLabelChange(label="production", from_version=1,
                                                  to_version=2, actor="acme", sequence=18))

    def drift(self) -> Any:
        return observability_pb2.DriftDetected(envelope=self.env("observability"),
                                               metric="query_embedding")

    def tenant_deleted(self, tenant: str) -> Any:
        return admin_pb2.TenantDeleted(envelope=self.env("model-registry", tenant=tenant),
                                       tenant_id=tenant)

    def training(self) -> Any:
        return trainer_pb2.TrainingProgress(envelope=self.env("trainer"), job_id="j1", step=1)

    def job(self) -> Any:
        return trainer_pb2.TrainingJobRequested(envelope=self.env("trainer"), job_id="j1")

    def every_kind(self) -> dict[str, Any]:
        """One event of every platform topic."""
        return {
            events.DOCUMENT_SUBMITTED.topic: self.submitted(),
            events.DOCUMENT_DELETED.topic: self.doc_deleted("doc-gone"),
            events.CHUNKS_CREATED.topic: self.chunks_created(),
            events.CHUNK_VECTORS.topic: self.vectors(),
            events.CHUNKS_INDEXED.topic: self.indexed(),
            events.SAFETY_VERDICT_ISSUED.topic: self.verdict(),
            events.MODEL_VERSION_CREATED.topic: self.model_created(),
            events.MODEL_ALIAS_CHANGED.topic: self.alias_changed(),
            events.PROMPT_VERSION_CREATED.topic: self.prompt_created(),
            events.PROMPT_LABEL_CHANGED.topic: self.label_changed(),
            events.INFERENCE_COMPLETED.topic: self.answer(),
            events.FEEDBACK_SUBMITTED.topic: self.feedback("req-1", -1, "call 415-555-0100"),
            events.TRAINING_JOB_REQUESTED.topic: self.job(),
            events.TRAINING_PROGRESS.topic: self.training(),
            events.DRIFT_DETECTED.topic: self.drift(),
            events.TENANT_DELETED.topic: self.tenant_deleted("someone-else"),
        }


@pytest.fixture(scope="session")
def chdb_dsn() -> str:
    """The process' one chDB folder (llmops_observability.testing.chdb_dir): chDB runs one
    engine per process, on one path, so tests share it and each takes a database of its own
    (fixture `ch_client`)."""
    return f"chdb://{chdb_dir()}"


@pytest.fixture
def ch_client(chdb_dsn: str) -> Iterator[Client]:
    """A migrated database of this test's own on the session's chDB engine."""
    client = connect(chdb_dsn, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(client)
    yield client
    client.command(f"DROP DATABASE IF EXISTS {client.database}")


@pytest.fixture
def make() -> Factories:
    return Factories()


def record(topic: str, event: Any, offset: int = 0, headers: list[tuple[str, bytes]] | None = None,
           value: bytes | None = None) -> Any:
    """A consumed record as aiokafka hands it over (the fields the service reads)."""
    payload = event.SerializeToString() if value is None else value
    return SimpleNamespace(topic=topic, partition=0, offset=offset, value=payload, key=b"k",
                           timestamp=int(WHEN.timestamp() * 1000), headers=headers or [])


@pytest.fixture
def as_record() -> Any:
    return record
