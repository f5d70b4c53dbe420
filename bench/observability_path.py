"""The platform path the observability throughput bench times: Kafka -> the kit's batch
consumer -> event-to-row mapping -> batch insert into ClickHouse.

`subscribe_writer` is the one function to swap for the observability service's own consumer and
writer once they are on main:

    from llmops_observability.adapters.store import ClickHouseStore
    from llmops_observability.api.events import Writer, register
    from llmops_observability.api.mapping import MappingOptions

    def subscribe_writer(bus, client, group, max_records, batch_timeout_ms):
        writer = Writer(ClickHouseStore(client), MappingOptions())
        register(bus, writer, group, max_records, batch_timeout_ms,
                 event_types=(events.SAFETY_VERDICT_ISSUED,))

and `map_rows` for the service's mapping (add_event into a Rows, then Rows.tables()), so the
bare insert gets exactly the rows the service writes. Until then the stand-in below does what
the service's design says: one `events` row and one `safety_verdicts` row per event, versions
from occurred_at, one column-oriented insert per table per consumer batch, in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from clickhouse_connect.driver.client import Client

from llmops.safety.v1 import safety_pb2
from llmops_kit import events
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


def map_rows(verdicts: Sequence[safety_pb2.SafetyVerdictIssued],
             sizes: Sequence[int]) -> list[Columns]:
    """(table, column names, one list per column) of the decoded events."""
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
    """Stand-in for the service's consumer + writer (see the module doc to swap it)."""

    async def on_batch(batch: Batch[safety_pb2.SafetyVerdictIssued]) -> None:
        tables = map_rows([i.event for i in batch.items],
                          [len(i.record.value or b"") for i in batch.items])
        await asyncio.to_thread(insert, client, tables)

    bus.subscribe_batch(events.SAFETY_VERDICT_ISSUED, group, on_batch,
                        max_records=max_records, batch_timeout_ms=batch_timeout_ms)
