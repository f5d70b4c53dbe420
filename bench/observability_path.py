"""The platform path the observability throughput bench times: Kafka -> the kit's batch
consumer -> event-to-row mapping -> batch insert into ClickHouse.

Two implementations, chosen by `use_service()`:

- "service": the observability service's own code (llmops_observability.api.events.register
  with its Writer and ClickHouseStore; rows from api.mapping.add_event), used whenever that
  package is importable (it is once the service's consumer is on main);
- "stand-in": what the service's design says, for a checkout without it: one `events` row and
  one `safety_verdicts` row per event, versions from occurred_at, one column-oriented insert
  per table per consumer batch, in a worker thread.

`subscribe_writer` (the consumer + writer) and `map_rows` (the same rows, for the bare insert)
are the only two entry points the bench uses.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from clickhouse_connect.driver.client import Client

from llmops.safety.v1 import safety_pb2
from llmops_kit import events
from llmops_kit.batch_consumer import relax_gc
from llmops_kit.kafka import Batch, EventBus

TOPIC = events.SAFETY_VERDICT_ISSUED.topic
TABLES = ("events", "safety_verdicts")
EVENTS_COLUMNS = ("tenant", "ts", "id", "topic", "producer", "bytes", "trace_id", "version")
VERDICT_COLUMNS = ("tenant", "ts", "id", "direction", "verdict", "finding_categories",
                   "finding_rules", "scores", "reasons", "toxicity_backend", "text_chars",
                   "redacted_excerpt", "version")
Columns = tuple[str, tuple[str, ...], list[list[Any]]]


def _enum(name: str, prefix: str) -> str:
    value = name.removeprefix(prefix).lower()
    return "" if value == "unspecified" else value


def use_service() -> bool:
    try:
        return importlib.util.find_spec("llmops_observability.api.events") is not None
    except ModuleNotFoundError:  # no llmops_observability.api package at all
        return False


def map_rows(verdicts: Sequence[safety_pb2.SafetyVerdictIssued],
             sizes: Sequence[int]) -> list[Columns]:
    """(table, column names, one list per column) of the decoded events."""
    return _service_rows(verdicts) if use_service() else _standin_rows(verdicts, sizes)


def _service_rows(verdicts: Sequence[safety_pb2.SafetyVerdictIssued]) -> list[Columns]:
    from llmops_observability.api.mapping import MappingOptions, add_event
    from llmops_observability.rows import Rows

    rows, options = Rows(), MappingOptions()
    for v in verdicts:
        add_event(rows, TOPIC, v, None, options)
    return [(table, tuple(names), columns) for table, names, columns in rows.tables()]


def _standin_rows(verdicts: Sequence[safety_pb2.SafetyVerdictIssued],
                  sizes: Sequence[int]) -> list[Columns]:
    ev: dict[str, list[Any]] = {c: [] for c in EVENTS_COLUMNS}
    sv: dict[str, list[Any]] = {c: [] for c in VERDICT_COLUMNS}
    for v, size in zip(verdicts, sizes, strict=True):
        env = v.envelope
        ts = env.occurred_at.ToDatetime(tzinfo=UTC)
        version = env.occurred_at.seconds * 1000 + env.occurred_at.nanos // 1_000_000
        for name, value in (("tenant", env.tenant_id), ("ts", ts), ("id", env.event_id),
                            ("topic", TOPIC), ("producer", env.producer), ("bytes", size),
                            ("trace_id", env.trace_id), ("version", version)):
            ev[name].append(value)
        for name, value in (
                ("tenant", env.tenant_id), ("ts", ts), ("id", env.event_id),
                ("direction", _enum(safety_pb2.Direction.Name(v.direction), "DIRECTION_")),
                ("verdict", _enum(safety_pb2.Verdict.Name(v.verdict), "VERDICT_")),
                ("finding_categories", [f.category for f in v.findings]),
                ("finding_rules", [f.rule for f in v.findings]),
                ("scores", dict(v.scores)), ("reasons", list(v.reasons)),
                ("toxicity_backend", v.toxicity_backend), ("text_chars", v.text_chars),
                ("redacted_excerpt", v.redacted_excerpt), ("version", version)):
            sv[name].append(value)
    return [("events", EVENTS_COLUMNS, [ev[c] for c in EVENTS_COLUMNS]),
            ("safety_verdicts", VERDICT_COLUMNS, [sv[c] for c in VERDICT_COLUMNS])]


def insert(client: Client, tables: list[Columns]) -> None:
    for table, names, columns in tables:
        client.insert(table, columns, column_names=list(names), column_oriented=True)


def subscribe_writer(bus: EventBus, client: Client, group: str, max_records: int,
                     batch_timeout_ms: int) -> None:
    """The consumer + writer: the service's own when importable, else the stand-in."""
    if use_service():
        from llmops_observability.adapters.store import ClickHouseStore
        from llmops_observability.api.events import Writer, register
        from llmops_observability.api.mapping import MappingOptions

        writer = Writer(ClickHouseStore(client), MappingOptions())
        register(bus, writer, group, max_records, batch_timeout_ms,
                 event_types=(events.SAFETY_VERDICT_ISSUED,))
        relax_gc()  # as the service's bootstrap does
        return

    async def on_batch(batch: Batch[safety_pb2.SafetyVerdictIssued]) -> None:
        tables = map_rows([i.event for i in batch.items],
                          [len(i.record.value or b"") for i in batch.items])
        await asyncio.to_thread(insert, client, tables)

    bus.subscribe_batch(events.SAFETY_VERDICT_ISSUED, group, on_batch,
                        max_records=max_records, batch_timeout_ms=batch_timeout_ms)
