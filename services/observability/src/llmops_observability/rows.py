"""Rows for the observability tables, gathered column by column for one insert per table.

The column lists are the schema's (migrations/0001_initial.sql) minus `is_deleted`, which
keeps its default. Pure: no I/O, no protobuf.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("tenant", "ts", "id", "topic", "producer", "bytes", "trace_id", "version"),
    "answers": (
        "tenant", "ts", "id", "trace_id", "operation_name", "response_model", "prompt_version",
        "input_tokens", "output_tokens", "usage", "time_to_first_token_ms", "duration_ms",
        "stage_ms", "streamed", "cached", "error", "input_safety", "output_safety",
        "guarded_passages", "retrieved_chunk_ids", "cited_document_ids", "cited_chunk_ids",
        "best_retrieval_score", "groundedness", "answer_sentences", "supported_sentences",
        "question", "answer", "embedding_model", "question_embedding", "version"),
    "document_events": (
        "tenant", "ts", "id", "event", "document_id", "doc_version", "chunks", "total_chunks",
        "tokens", "bytes", "batch_index", "batch_count", "source", "content_type", "version"),
    "safety_verdicts": (
        "tenant", "ts", "id", "direction", "verdict", "finding_categories", "finding_rules",
        "scores", "reasons", "toxicity_backend", "text_chars", "redacted_excerpt", "version"),
    "registry_changes": (
        "tenant", "ts", "id", "kind", "name", "pointer", "from_version", "to_version", "actor",
        "reason", "sequence", "format", "base_model", "version"),
    "dead_letters": (
        "tenant", "ts", "id", "dlq_topic", "source_topic", "reason", "consumer_group", "error",
        "payload_bytes", "version"),
    "scores": (
        "tenant", "ts", "id", "request_id", "source", "name", "value", "comment",
        "response_model", "run_id", "version"),
    "corpus_sample": (
        "tenant", "ts", "id", "document_id", "embedding_model", "embedding", "version"),
    # migrations/0003_training_steps.sql
    "training_steps": (
        "tenant", "ts", "id", "loop_id", "trigger", "trigger_ref", "step", "sequence",
        "dataset_id", "job_id", "model_name", "model_version", "production_version",
        "eval_dataset", "reason", "final", "version"),
}

UINT32_MAX = 2**32 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_version(ts: datetime) -> int:
    """A row's ReplacingMergeTree version: its event's time in ms (the same event, the same
    version, so a replay replaces rather than adds)."""
    return int(ts.timestamp() * 1000)


def to_ms(ts: datetime) -> int:
    """A time as epoch milliseconds (what the rows hold in `ts`: DateTime64(3) ticks)."""
    return (utc(ts) - _EPOCH) // _MS


_MS = timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class Rows:
    """Rows of one consumer batch, per table, as tuples in COLUMNS order (appending a tuple is
    the cheapest way to collect them; `tables()` turns them into the columns clickhouse-connect
    inserts fastest). `ts` is epoch milliseconds, an int: clickhouse-connect writes ints into
    DateTime64(3) as they are, where a datetime costs a conversion per row."""

    def __init__(self) -> None:
        self._rows: dict[str, list[tuple[Any, ...]]] = {}

    def append(self, table: str, row: tuple[Any, ...]) -> None:
        """One row, its values in COLUMNS[table] order (the mapping's hot path: unchecked here,
        `tables()` checks the width)."""
        rows = self._rows.get(table)
        if rows is None:
            rows = self._rows[table] = []
        rows.append(row)

    def add(self, table: str, **values: Any) -> None:
        """One row by column name (every column, no other)."""
        names = COLUMNS[table]
        if values.keys() != set(names):
            missing = sorted(set(names) - set(values))
            extra = sorted(set(values) - set(names))
            raise KeyError(f"{table}: missing columns {missing}, unknown columns {extra}")
        self.append(table, tuple(values[n] for n in names))

    def extend(self, other: Rows) -> None:
        for table, rows in other._rows.items():
            self._rows.setdefault(table, []).extend(rows)

    def drop_deleted(self, deleted: dict[str, int]) -> int:
        """Drops the rows of deleted tenants (tenant -> deletion time in epoch ms) from before
        their deletion; returns how many. Every table starts with (tenant, ts)."""
        dropped = 0
        for table, rows in self._rows.items():
            keep = [r for r in rows if r[0] not in deleted or r[1] > deleted[r[0]]]
            if len(keep) != len(rows):
                dropped += len(rows) - len(keep)
                self._rows[table] = keep
        return dropped

    def count(self, table: str) -> int:
        return len(self._rows.get(table, ()))

    def tables(self) -> Iterator[tuple[str, tuple[str, ...], list[Any]]]:
        """(table, column names, one sequence per column) for every table with rows."""
        for table, rows in self._rows.items():
            if not rows:
                continue
            names = COLUMNS[table]
            columns = list(zip(*rows, strict=True))
            if len(columns) != len(names):
                raise ValueError(f"{table}: rows of {len(columns)} values, {len(names)} columns")
            yield table, names, columns

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The rows of `table` as dicts (tests and logs)."""
        names = COLUMNS[table]
        return [dict(zip(names, r, strict=True)) for r in self._rows.get(table, ())]

    def __bool__(self) -> bool:
        return any(self._rows.values())
