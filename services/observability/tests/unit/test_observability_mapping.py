"""Every event type -> its rows, with values; redaction of free text; dead letters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from llmops_kit import dead_letters, events, topics
from llmops_observability.api.mapping import (
    EVENTS_ONLY,
    TYPED,
    MappingOptions,
    add_dead_letter,
    add_event,
    sampled,
)
from llmops_observability.rows import COLUMNS, Rows

pytestmark = pytest.mark.unit

OPTIONS = MappingOptions(weak_retrieval_threshold=0.5, corpus_sample_rate=1.0)
WHEN_MS = int(datetime(2026, 11, 30, 12, 0, 0, 250000, tzinfo=UTC).timestamp() * 1000)


def rows_of(event: Any, topic: str, options: MappingOptions = OPTIONS, rec: Any = None) -> Rows:
    rows = Rows()
    add_event(rows, topic, event, rec, options)
    return rows


def test_every_registered_event_type_is_mapped() -> None:
    assert set(TYPED) | set(EVENTS_ONLY) == {et.message for et in events.REGISTRY.values()}
    assert set(events.REGISTRY) == set(topics.ALL)


def test_every_event_becomes_one_events_row(make: Any, as_record: Any) -> None:
    for topic, event in make.every_kind().items():
        rec = as_record(topic, event)
        row = rows_of(event, topic, rec=rec).rows("events")
        assert row == [{
            "tenant": event.envelope.tenant_id, "ts": WHEN_MS, "id": event.envelope.event_id,
            "topic": topic, "producer": event.envelope.producer, "bytes": len(rec.value),
            "trace_id": "trace-1", "version": WHEN_MS}], topic


def test_an_answer_becomes_an_answers_row_with_its_stages_and_versions(make: Any) -> None:
    ev = make.answer(event_id="req-42")
    [row] = rows_of(ev, topics.INFERENCE_COMPLETED).rows("answers")
    assert row["id"] == "req-42" and row["tenant"] == "acme" and row["version"] == WHEN_MS
    assert (row["response_model"], row["prompt_version"], row["operation_name"]) == \
        ("smollm2@3", "rag-answer@2", "chat")
    assert row["stage_ms"] == {"input_safety": 2.0, "embedding": 10.0, "retrieval": 20.0,
                               "prompt": 3.0, "generation": 150.0, "output_safety": 5.0}
    assert (row["input_tokens"], row["output_tokens"]) == (120, 30)
    assert row["usage"] == {"input_tokens": 120, "output_tokens": 30}
    assert (row["time_to_first_token_ms"], row["duration_ms"]) == (40.0, 190.0)
    assert (row["streamed"], row["cached"], row["error"]) == (1, 0, "")
    assert (row["input_safety"], row["output_safety"]) == ("redact", "allow")
    assert row["guarded_passages"] == 1
    assert row["retrieved_chunk_ids"] == ["c1", "c2", "c3"]
    assert (row["cited_document_ids"], row["cited_chunk_ids"]) == (["d1"], ["c1"])
    assert row["best_retrieval_score"] == pytest.approx(0.72)
    assert row["groundedness"] == pytest.approx(0.5)
    assert (row["answer_sentences"], row["supported_sentences"]) == (2, 1)
    assert row["question"] == "What is the [EMAIL] policy?"
    assert row["question_embedding"] == pytest.approx([0.1, 0.2, 0.3])
    assert row["embedding_model"] == "all-MiniLM-L6-v2"


def test_an_answer_scores_groundedness_and_retrieval_against_the_threshold(make: Any) -> None:
    rows = rows_of(make.answer(event_id="req-1"), topics.INFERENCE_COMPLETED)
    scores = {(r["source"], r["name"]): r for r in rows.rows("scores")}
    assert {k: round(r["value"], 4) for k, r in scores.items()} == {
        ("groundedness", "groundedness"): 0.5,
        ("retrieval", "best_retrieval_score"): 0.72,
        ("retrieval", "weak_retrieval"): 0.0,
    }
    assert {r["request_id"] for r in scores.values()} == {"req-1"}
    assert {r["response_model"] for r in scores.values()} == {"smollm2@3"}
    assert len({r["id"] for r in scores.values()}) == 3  # distinct rows, stable ids

    weak = rows_of(make.answer(best_retrieval_score=0.3), topics.INFERENCE_COMPLETED,
                   MappingOptions(weak_retrieval_threshold=0.5))
    assert [r["value"] for r in weak.rows("scores") if r["name"] == "weak_retrieval"] == [1.0]
    strict = rows_of(make.answer(best_retrieval_score=0.72), topics.INFERENCE_COMPLETED,
                     MappingOptions(weak_retrieval_threshold=0.8))
    assert [r["value"] for r in strict.rows("scores") if r["name"] == "weak_retrieval"] == [1.0]


def test_an_unscored_answer_without_retrieval_has_no_scores(make: Any) -> None:
    from llmops.inference.v1 import inference_pb2

    ev = make.answer(stages=[inference_pb2.StageLatency(stage="input_safety", milliseconds=1)],
                     retrieved_chunk_ids=[], best_retrieval_score=0.0, error="INPUT_BLOCKED")
    ev.ClearField("groundedness")
    rows = rows_of(ev, topics.INFERENCE_COMPLETED)
    assert rows.rows("scores") == []
    [answer] = rows.rows("answers")
    assert (answer["groundedness"], answer["error"]) == (None, "INPUT_BLOCKED")


def test_text_with_pii_is_redacted_before_it_is_stored(make: Any) -> None:
    ev = make.answer(redacted_question="mail jane.roe@example.com please",
                     redacted_answer="call +1 415 555 0100")
    [row] = rows_of(ev, topics.INFERENCE_COMPLETED).rows("answers")
    assert row["question"] == "mail [EMAIL] please"
    assert "555" not in row["answer"] and "[PHONE]" in row["answer"]
    [score] = rows_of(make.feedback("r1", -1, "call 415-555-0100"),
                      topics.FEEDBACK_SUBMITTED).rows("scores")
    assert "555" not in score["comment"]
    [doc] = rows_of(make.submitted(source="inbox/jane.roe@example.com/a.md"),
                    topics.DOCUMENT_SUBMITTED).rows("document_events")
    assert doc["source"] == "inbox/[EMAIL]/a.md"
    [verdict] = rows_of(make.verdict(), topics.SAFETY_VERDICT_ISSUED).rows("safety_verdicts")
    assert verdict["reasons"] == ["pii found near [EMAIL]"]
    [change] = rows_of(make.alias_changed(), topics.MODEL_ALIAS_CHANGED).rows("registry_changes")
    assert change["reason"] == "better, ask [EMAIL]"


def test_feedback_becomes_a_rating_score_joined_by_request_id(make: Any) -> None:
    ev = make.feedback("req-7", rating=-1, comment="wrong answer")
    [row] = rows_of(ev, topics.FEEDBACK_SUBMITTED).rows("scores")
    assert row == {"tenant": "acme", "ts": WHEN_MS, "id": ev.envelope.event_id,
                   "request_id": "req-7", "source": "feedback", "name": "rating", "value": -1.0,
                   "comment": "wrong answer", "response_model": "", "run_id": "",
                   "version": WHEN_MS}


def test_document_events_carry_counts_per_stage(make: Any) -> None:
    [sub] = rows_of(make.submitted(content=b"x" * 300), topics.DOCUMENT_SUBMITTED
                    ).rows("document_events")
    assert (sub["event"], sub["document_id"], sub["bytes"], sub["content_type"]) == \
        ("submitted", "doc-1", 300, "markdown")
    [created] = rows_of(make.chunks_created(n=3), topics.CHUNKS_CREATED).rows("document_events")
    assert (created["event"], created["chunks"], created["total_chunks"], created["tokens"],
            created["bytes"], created["doc_version"]) == ("chunks_created", 3, 3, 33, 24, 1)
    [embedded] = rows_of(make.vectors(n=2), topics.CHUNK_VECTORS).rows("document_events")
    assert (embedded["event"], embedded["chunks"]) == ("chunks_embedded", 2)
    [indexed] = rows_of(make.indexed(n=3), topics.CHUNKS_INDEXED).rows("document_events")
    assert (indexed["event"], indexed["chunks"], indexed["batch_count"]) == \
        ("chunks_indexed", 3, 1)
    [deleted] = rows_of(make.doc_deleted(up_to=4), topics.DOCUMENT_DELETED).rows("document_events")
    assert (deleted["event"], deleted["doc_version"]) == ("deleted", 4)


def test_chunk_vectors_are_sampled_by_chunk_id(make: Any) -> None:
    ids = [f"doc-{i}-c0" for i in range(2000)]
    kept = [i for i in ids if sampled(i, 0.1)]
    assert 150 < len(kept) < 250
    assert kept == [i for i in ids if sampled(i, 0.1)]  # deterministic
    assert not any(sampled(i, 0.0) for i in ids[:100])
    every = rows_of(make.vectors(n=3, dims=4), topics.CHUNK_VECTORS).rows("corpus_sample")
    assert [(r["id"], r["document_id"], r["embedding"]) for r in every] == [
        (f"doc-1-c{i}", "doc-1", [float(i)] * 4) for i in range(3)]
    assert {r["embedding_model"] for r in every} == {"all-MiniLM-L6-v2"}
    none = rows_of(make.vectors(), topics.CHUNK_VECTORS, MappingOptions(corpus_sample_rate=0.0))
    assert none.rows("corpus_sample") == []


def test_safety_verdicts_keep_categories_and_rules(make: Any) -> None:
    [row] = rows_of(make.verdict(), topics.SAFETY_VERDICT_ISSUED).rows("safety_verdicts")
    assert (row["direction"], row["verdict"], row["finding_categories"],
            row["finding_rules"], row["text_chars"]) == \
        ("input", "redact", ["pii.email"], ["email"], 42)
    assert row["scores"] == {"toxicity": pytest.approx(0.1)}
    assert row["redacted_excerpt"] == "My e-mail is [EMAIL]"


def test_registry_changes_are_scoped_to_what_changed(make: Any) -> None:
    [model] = rows_of(make.model_created(), topics.MODEL_VERSION_CREATED).rows("registry_changes")
    assert (model["tenant"], model["kind"], model["name"], model["to_version"], model["format"],
            model["base_model"]) == ("", "model_version_created", "smollm2", 3, "hf",
                                     "SmolLM2-135M")
    [alias] = rows_of(make.alias_changed(scope="acme"), topics.MODEL_ALIAS_CHANGED
                      ).rows("registry_changes")
    assert (alias["tenant"], alias["kind"], alias["pointer"], alias["from_version"],
            alias["to_version"], alias["sequence"], alias["actor"]) == \
        ("acme", "alias_changed", "production", 2, 3, 17, "acme")
    [prompt] = rows_of(make.prompt_created(), topics.PROMPT_VERSION_CREATED
                       ).rows("registry_changes")
    assert (prompt["tenant"], prompt["kind"], prompt["to_version"]) == \
        ("acme", "prompt_version_created", 2)
    [label] = rows_of(make.label_changed(), topics.PROMPT_LABEL_CHANGED).rows("registry_changes")
    assert (label["kind"], label["pointer"], label["to_version"]) == \
        ("label_changed", "production", 2)


def test_a_continuous_training_step_becomes_a_training_steps_row() -> None:
    from llmops.trainer.v1 import pipeline_pb2

    ev = pipeline_pb2.ContinuousTrainingStep(
        loop_id="ctl-1", trigger="dataset", trigger_ref="ds-1", step="gate_refused",
        sequence=5, dataset_id="ds-1", job_id="job-ct-1", model_name="smollm2",
        model_version=3, production_version=2, eval_dataset="ds-e",
        reason="gate failed; ask bob@example.com", final=True)
    ev.envelope.CopyFrom(events.make_envelope("trainer", tenant="acme", event_id="ctl-1-5",
                                              trace_id="trace-1"))
    ev.envelope.occurred_at.FromMilliseconds(WHEN_MS)
    [row] = rows_of(ev, topics.CONTINUOUS_TRAINING_STEP).rows("training_steps")
    assert row == {"tenant": "acme", "ts": WHEN_MS, "id": "ctl-1-5", "loop_id": "ctl-1",
                   "trigger": "dataset", "trigger_ref": "ds-1", "step": "gate_refused",
                   "sequence": 5, "dataset_id": "ds-1", "job_id": "job-ct-1",
                   "model_name": "smollm2", "model_version": 3, "production_version": 2,
                   "eval_dataset": "ds-e", "reason": "gate failed; ask [EMAIL]", "final": 1,
                   "version": WHEN_MS}


def test_events_only_kinds_have_no_typed_rows(make: Any) -> None:
    for event, topic in ((make.drift(), topics.DRIFT_DETECTED),
                         (make.tenant_deleted("x"), topics.TENANT_DELETED),
                         (make.training(), topics.TRAINING_PROGRESS)):
        rows = rows_of(event, topic)
        assert [t for t, _, _ in rows.tables()] == ["events"]


def test_the_same_event_always_makes_the_same_rows(make: Any) -> None:
    ev = make.answer()
    assert rows_of(ev, topics.INFERENCE_COMPLETED).rows("scores") == \
        rows_of(ev, topics.INFERENCE_COMPLETED).rows("scores")


def test_a_dead_letter_is_counted_from_its_headers(as_record: Any) -> None:
    headers = [(dead_letters.HEADER_DLQ_REASON, b"MALFORMED_PROTOBUF"),
               (dead_letters.HEADER_DLQ_GROUP, b"observability"),
               (dead_letters.HEADER_DLQ_TOPIC, topics.CHUNKS_CREATED.encode()),
               (dead_letters.HEADER_DLQ_ERROR, b"bad bytes from ann@example.com"),
               (events.HEADER_TENANT, b"acme")]
    rec = as_record(topics.dead_letter(topics.CHUNKS_CREATED), None, offset=7, headers=headers,
                    value=b"\xff\x00junk")
    rows = Rows()
    add_dead_letter(rows, rec)
    [row] = rows.rows("dead_letters")
    assert row["id"] == f"{topics.CHUNKS_CREATED}.dlq/0/7"
    assert (row["tenant"], row["source_topic"], row["reason"], row["consumer_group"],
            row["payload_bytes"]) == ("acme", topics.CHUNKS_CREATED, "MALFORMED_PROTOBUF",
                                      "observability", 6)
    assert row["error"] == "bad bytes from [EMAIL]"
    assert row["version"] == WHEN_MS


def test_a_dead_letter_without_kit_headers_still_counts(as_record: Any) -> None:
    rows = Rows()
    add_dead_letter(rows, as_record("llmops.x.v1.dlq", None, value=b"abc"))
    [row] = rows.rows("dead_letters")
    assert (row["reason"], row["source_topic"], row["tenant"], row["payload_bytes"]) == \
        ("UNKNOWN", "llmops.x.v1", "", 3)


def test_rows_refuse_a_missing_or_unknown_column() -> None:
    rows = Rows()
    with pytest.raises(KeyError, match="missing columns"):
        rows.add("events", tenant="a")
    assert set(COLUMNS) == {"events", "answers", "document_events", "safety_verdicts",
                            "registry_changes", "dead_letters", "scores", "corpus_sample",
                            "training_steps"}
