"""Rows for the observability tables, gathered column by column for one insert per table.

The column lists are the schema's (migrations/0001_initial.sql) minus `is_deleted`, which
keeps its default. Pure: no I/O, no protobuf.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
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
}

UINT32_MAX = 2**32 - 1


def ms_version(ts: datetime) -> int:
    """A row's ReplacingMergeTree version: its event's time in ms (the same event, the same
    version, so a replay replaces rather than adds)."""
    return int(ts.timestamp() * 1000)


def utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class Rows:
    """Rows of one consumer batch, per table and column-oriented (what clickhouse-connect
    inserts fastest)."""

    def __init__(self) -> None:
        self._columns: dict[str, dict[str, list[Any]]] = {}

    def add(self, table: str, **values: Any) -> None:
        columns = self._columns.get(table)
        if columns is None:
            columns = self._columns[table] = {n: [] for n in COLUMNS[table]}
        if values.keys() != columns.keys():
            missing = sorted(set(columns) - set(values))
            extra = sorted(set(values) - set(columns))
            raise KeyError(f"{table}: missing columns {missing}, unknown columns {extra}")
        for name, column in columns.items():
            column.append(values[name])

    def extend(self, other: Rows) -> None:
        for table, columns in other._columns.items():
            mine = self._columns.setdefault(table, {n: [] for n in columns})
            for name, values in columns.items():
                mine[name].extend(values)

    def drop_deleted(self, deleted: dict[str, datetime]) -> int:
        """Drops the rows of deleted tenants from before their deletion; returns how many."""
        dropped = 0
        for columns in self._columns.values():
            tenants, times = columns["tenant"], columns["ts"]
            keep = [i for i, (t, ts) in enumerate(zip(tenants, times, strict=True))
                    if t not in deleted or utc(ts) > deleted[t]]
            if len(keep) == len(tenants):
                continue
            dropped += len(tenants) - len(keep)
            for name, values in columns.items():
                columns[name] = [values[i] for i in keep]
        return dropped

    def count(self, table: str) -> int:
        columns = self._columns.get(table)
        return len(columns["id"]) if columns else 0

    def tables(self) -> Iterator[tuple[str, tuple[str, ...], list[list[Any]]]]:
        """(table, column names, one list per column) for every table with rows."""
        for table, columns in self._columns.items():
            names = tuple(columns)
            yield table, names, [columns[n] for n in names]

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The rows of `table` as dicts (tests and logs)."""
        columns = self._columns.get(table, {})
        names = list(columns)
        return [dict(zip(names, values, strict=True))
                for values in zip(*columns.values(), strict=True)] if names else []

    def __bool__(self) -> bool:
        return any(self.count(t) for t in self._columns)
