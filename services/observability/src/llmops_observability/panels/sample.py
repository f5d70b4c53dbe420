"""A small, deterministic data set with known values in every table the panels read: the
panel tests compute what each panel must return from `Sample.rows` in plain Python, and the
report test draws it. Also handy to look at the dashboards without running the platform
(`python -m llmops_observability.panels.sample chdb:///tmp/ch`).

What it holds, in the hour from START (tenant "acme" unless said otherwise):
* 100 answers, one every 30 s, with known stage latencies, models, errors, groundedness and
  retrieval scores; tenant "globex" has 10 answers of its own, and one acme answer lies before
  the range;
* feedback on 40 of them, one rating of an answer that is not stored, and groundedness scores
  (which the feedback panels must not count);
* safety verdicts with finding categories, document events of 6 document versions (one never
  fully indexed, one submitted before the range), drift measurements, events on two topics,
  dead letters and registry changes;
* continuous-training loops (LOOPS): one promoted, one whose job failed, one skipped, one the
  gate refused, one before the range, and globex's own.
Every row is also inserted a second time (same version: an exact redelivery) and, for most
tables, once more with an older version and wrong values: only FINAL reads see the truth.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
END = START + timedelta(hours=1)
INTERVAL_SECONDS = 600
MODELS = ("smollm2@1", "smollm2@2")
TOPIC_A = "llmops.inference.completed.v1"
TOPIC_B = "llmops.ingestion.chunks-created.v1"


@dataclass
class Sample:
    # The true (latest) rows per table, as inserted (a row is a dict of column -> value).
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Stale versions and redeliveries of the same rows.
    noise: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, table: str, row: dict[str, Any], stale: dict[str, Any] | None = None) -> None:
        row = {"version": 2, **row}
        self.rows.setdefault(table, []).append(row)
        self.noise.setdefault(table, []).append(dict(row))
        if stale is not None:
            self.noise[table].append({**row, **stale, "version": 1})


def _answers(s: Sample) -> None:
    for i in range(100):
        error = ("GENERATION_UNAVAILABLE" if i % 20 == 3 else
                 "INPUT_BLOCKED" if i % 25 == 7 else "")
        blocked = error == "INPUT_BLOCKED"
        stages = {"retrieval": float(i + 1), "generation": 0.0 if blocked else 10.0 * (i + 1)}
        s.add("answers", {
            "tenant": "acme", "ts": START + timedelta(seconds=30 * i + 5), "id": f"req-{i}",
            "response_model": "" if blocked else MODELS[i % 4 == 0],
            "output_tokens": 0 if error else 20 + i % 3, "input_tokens": 100,
            "time_to_first_token_ms": 0.0 if error else 2.0 * (i + 1),
            "stage_ms": stages, "duration_ms": sum(stages.values()) + 5.0,
            "cached": int(i % 10 == 9), "error": error,
            "groundedness": None if error else (i % 5) / 4,
            "best_retrieval_score": (i % 10) / 10,
        }, stale={"stage_ms": {"retrieval": 9999.0}, "duration_ms": 9999.0,
                  "response_model": "stale@0", "error": "STALE"})
    for i in range(10):
        s.add("answers", {
            "tenant": "globex", "ts": START + timedelta(seconds=60 * i + 7), "id": f"g-req-{i}",
            "response_model": "other@1", "output_tokens": 50, "time_to_first_token_ms": 500.0,
            "stage_ms": {"retrieval": 1000.0, "generation": 2000.0}, "duration_ms": 3000.0,
            "cached": 0, "error": "INTERNAL" if i < 3 else "", "groundedness": 0.1,
            "best_retrieval_score": 0.9})
    s.add("answers", {
        "tenant": "acme", "ts": START - timedelta(minutes=5), "id": "req-before",
        "response_model": MODELS[0], "output_tokens": 20, "time_to_first_token_ms": 7777.0,
        "stage_ms": {"retrieval": 7777.0, "generation": 7777.0}, "duration_ms": 15559.0,
        "error": "DEADLINE_EXCEEDED", "groundedness": 0.0, "best_retrieval_score": 0.0})


def _scores(s: Sample) -> None:
    for i in range(40):
        s.add("scores", {
            "tenant": "acme", "ts": START + timedelta(seconds=30 * i + 15), "id": f"fb-{i}",
            "request_id": f"req-{i}", "source": "feedback", "name": "rating",
            "value": -1.0 if i % 3 == 0 else 1.0}, stale={"value": -1.0 if i % 3 else 1.0})
        s.add("scores", {
            "tenant": "acme", "ts": START + timedelta(seconds=30 * i + 16), "id": f"gr-{i}",
            "request_id": f"req-{i}", "source": "groundedness", "name": "groundedness",
            "value": 1.0})
    s.add("scores", {"tenant": "acme", "ts": START + timedelta(minutes=50), "id": "fb-lost",
                     "request_id": "req-unknown", "source": "feedback", "name": "rating",
                     "value": 1.0})
    for i in range(5):
        s.add("scores", {"tenant": "globex", "ts": START + timedelta(minutes=i + 1),
                         "id": f"g-fb-{i}", "request_id": f"g-req-{i}", "source": "feedback",
                         "name": "rating", "value": -1.0})


def _safety(s: Sample) -> None:
    categories: tuple[list[str], ...] = (["EMAIL", "PHONE"], ["PROMPT_INJECTION"], [])
    verdicts = ("redact", "block", "allow")
    for i in range(30):
        s.add("safety_verdicts", {
            "tenant": "acme", "ts": START + timedelta(seconds=100 * i + 3), "id": f"sv-{i}",
            "direction": ("input", "output")[i % 2], "verdict": verdicts[i % 3],
            "finding_categories": categories[i % 3]},
            stale={"finding_categories": ["STALE"], "verdict": "stale"})
    s.add("safety_verdicts", {"tenant": "globex", "ts": START + timedelta(minutes=3),
                              "id": "g-sv", "direction": "input", "verdict": "block",
                              "finding_categories": ["TOXICITY"]})


def _documents(s: Sample) -> None:
    # Document d: submitted at its start, 2 batches of 10 chunks created 1 s and 2 s later,
    # batch 0 indexed at +3 s and batch 1 at +(4 + d) s: freshness (4 + d) s. Document 0 was
    # submitted 2 s before the range; document 5 never gets its second batch indexed; document 4
    # came over gRPC (no DocumentSubmitted): its freshness starts at its first chunks, 7 s.
    # DocumentSubmitted rows carry no document version (it is assigned later), as mapped.
    for d in range(6):
        t0 = START + (timedelta(seconds=-2) if d == 0 else timedelta(minutes=12 * d - 9))
        base = {"tenant": "acme", "document_id": f"doc-{d}", "doc_version": 1}
        if d != 4:
            s.add("document_events", {**base, "ts": t0, "id": f"doc-{d}/sub",
                                      "event": "submitted", "doc_version": 0})
        for b in range(2):
            s.add("document_events", {**base, "ts": t0 + timedelta(seconds=1 + b),
                                      "id": f"doc-{d}/cc{b}", "event": "chunks_created",
                                      "chunks": 10, "total_chunks": 20, "batch_index": b,
                                      "batch_count": 2})
            if d == 5 and b == 1:
                continue
            at = t0 + timedelta(seconds=3 if b == 0 else 4 + d)
            s.add("document_events", {**base, "ts": at, "id": f"doc-{d}/ci{b}",
                                      "event": "chunks_indexed", "chunks": 10,
                                      "total_chunks": 20, "batch_index": b, "batch_count": 2},
                  stale={"chunks": 999})
    t0 = START + timedelta(minutes=20)
    base = {"tenant": "globex", "document_id": "g-doc", "doc_version": 1}
    s.add("document_events", {**base, "ts": t0, "id": "g-doc/sub", "event": "submitted",
                              "doc_version": 0})
    s.add("document_events", {**base, "ts": t0 + timedelta(seconds=50), "id": "g-doc/cc0",
                              "event": "chunks_created", "chunks": 500, "total_chunks": 500,
                              "batch_index": 0, "batch_count": 1})
    s.add("document_events", {**base, "ts": t0 + timedelta(seconds=100), "id": "g-doc/ci0",
                              "event": "chunks_indexed", "chunks": 500, "total_chunks": 500,
                              "batch_index": 0, "batch_count": 1})


def _drift(s: Sample) -> None:
    for k in range(6):
        distance = 0.1 * (k + 1)
        auc = None if distance <= 0.25 else 0.5 + 0.05 * k
        s.add("drift", {
            "tenant": "acme", "ts": START + timedelta(minutes=10 * k + 1), "id": f"dr-{k}",
            "metric": "query_embedding", "reference": ("baseline_window", "corpus")[k % 2],
            "centroid_distance": distance, "threshold": 0.25, "roc_auc": auc,
            "detected": int(auc is not None and auc > 0.55), "current_samples": 50 + k,
            "reference_samples": 200, "window_start": START + timedelta(minutes=10 * k - 60),
            "window_end": START + timedelta(minutes=10 * k)},
            stale={"centroid_distance": 9.0, "detected": 0})
    s.add("drift", {"tenant": "globex", "ts": START + timedelta(minutes=5), "id": "g-dr",
                    "metric": "query_embedding", "reference": "corpus", "centroid_distance": 0.9,
                    "threshold": 0.25, "roc_auc": 0.99, "detected": 1,
                    "window_start": START - timedelta(hours=1), "window_end": START})


def _platform(s: Sample) -> None:
    for i in range(90):
        s.add("events", {"tenant": "acme", "ts": START + timedelta(seconds=20 * i + 1),
                         "id": f"ev-{i}", "topic": TOPIC_A if i % 3 else TOPIC_B,
                         "producer": "test", "bytes": 100})
    for i in range(7):
        s.add("events", {"tenant": "globex", "ts": START + timedelta(seconds=30 * i + 2),
                         "id": f"g-ev-{i}", "topic": TOPIC_B, "producer": "test"})
    letters = [("acme", TOPIC_A, "DECODE_ERROR")] * 3 + [("acme", TOPIC_B, "INVALID_TENANT"),
                                                         ("globex", TOPIC_A, "DECODE_ERROR")]
    for i, (tenant, topic, reason) in enumerate(letters):
        s.add("dead_letters", {"tenant": tenant, "ts": START + timedelta(minutes=7 * i + 1),
                               "id": f"{topic}.dlq/0/{i}", "dlq_topic": f"{topic}.dlq",
                               "source_topic": topic, "reason": reason},
              stale={"reason": "STALE"})
    changes = [("acme", "model_alias", "smollm2", "production", 1, 2, 10),
               ("", "prompt_label", "rag-answer", "production", 0, 1, 20),
               ("acme", "model_version", "smollm2", "", 0, 2, 30),
               ("globex", "model_alias", "other", "production", 0, 1, 40)]
    for i, (tenant, kind, name, pointer, old, new, minute) in enumerate(changes):
        s.add("registry_changes", {"tenant": tenant, "ts": START + timedelta(minutes=minute),
                                   "id": f"rc-{i}", "kind": kind, "name": name,
                                   "pointer": pointer, "from_version": old, "to_version": new,
                                   "actor": "admin"})


# Continuous-training loops (tenant, loop id, trigger, steps, minute of the first step); one
# acme loop starts before the range, and globex has one of its own.
LOOPS = [
    ("acme", "ctl-1", "dataset", ("triggered", "job_submitted", "job_succeeded", "evaluated",
                                  "gate_passed", "canary_started", "canary_promoted"), 2),
    ("acme", "ctl-2", "dataset", ("triggered", "job_submitted", "job_failed"), 20),
    ("acme", "ctl-3", "dataset", ("skipped",), 21),
    ("acme", "ctl-4", "drift", ("triggered", "job_submitted", "job_succeeded", "evaluated",
                                "gate_refused"), 30),
    ("globex", "ctl-g", "dataset", ("triggered",), 5),
    ("acme", "ctl-0", "dataset", ("triggered",), -120),
]


def _training(s: Sample) -> None:
    for tenant, loop_id, trigger, steps, minute in LOOPS:
        for seq, step in enumerate(steps, start=1):
            after = step not in ("triggered", "job_submitted", "skipped")
            s.add("training_steps", {
                "tenant": tenant, "ts": START + timedelta(minutes=minute + seq),
                "id": f"{loop_id}-{seq}", "loop_id": loop_id, "trigger": trigger,
                "trigger_ref": "ds-x" if trigger == "dataset" else "drift-1", "step": step,
                "sequence": seq, "dataset_id": "ds-x", "job_id": f"job-{loop_id}",
                "model_name": "smollm2", "model_version": 3 if after else 0,
                "production_version": 2 if after else 0,
                "eval_dataset": "ds-eval" if after else "", "reason": f"{step} of {loop_id}",
                "final": 1 if seq == len(steps) and step not in ("triggered",) else 0},
                stale={"step": "stale", "reason": "STALE"})


def build() -> Sample:
    s = Sample()
    for part in (_answers, _scores, _safety, _documents, _drift, _platform, _training):
        part(s)
    return s


def load(client: Client, sample: Sample | None = None) -> Sample:
    """Inserts the sample into a migrated store: the stale versions and redeliveries first,
    then the truth, as separate parts that are not deduplicated on insert, so that until the
    parts merge only FINAL reads see the truth (tests stop merges before loading)."""
    sample = sample or build()
    for table in sample.rows:
        rows = sample.noise[table] + sample.rows[table]
        columns = sorted({c for row in rows for c in row})
        defaults = {c: _default(table, c, rows) for c in columns
                    if any(c not in row for row in rows)}
        for part in (sample.noise[table], sample.rows[table]):
            client.insert(table, [[row[c] if c in row else defaults[c] for c in columns]
                                  for row in part],
                          column_names=columns, settings={"optimize_on_insert": 0})
    return sample


def _default(table: str, column: str, rows: list[dict[str, Any]]) -> Any:
    example = next(row[column] for row in rows if column in row and row[column] is not None)
    if column in ("groundedness", "roc_auc"):
        return None
    for kind, value in ((str, ""), (bool, 0), (int, 0), (float, 0.0), (list, []), (dict, {})):
        if isinstance(example, kind):
            return value
    raise TypeError(f"no default for {table}.{column}")


def main(argv: list[str]) -> None:
    from llmops_observability.clickhouse import connect, migrate

    if len(argv) != 1:
        raise SystemExit("usage: python -m llmops_observability.panels.sample DSN")
    client = connect(argv[0])
    migrate(client)
    load(client)
    print(f"loaded the sample data ({START:%Y-%m-%d %H:%M} to {END:%H:%M} UTC) into {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
