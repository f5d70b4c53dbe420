"""The throughput bench's rows (bench/observability_path.py) go into the real schema with the
values of the events they came from, whichever path (service or stand-in) the bench uses."""

from __future__ import annotations

import pytest
from observability_path import insert, map_rows
from observability_throughput import verdict

from ..drift_samples import store_client

pytestmark = pytest.mark.integration


def test_bench_rows_land_in_events_and_safety_verdicts(request: pytest.FixtureRequest) -> None:
    client = store_client(request, "bench")
    built = [verdict("bench-t", i) for i in range(3)]
    tables = map_rows(built, [len(e.SerializeToString()) for e in built])
    insert(client, tables)
    insert(client, tables)  # a replay: the same rows, nothing new under FINAL

    assert {t for t, _, _ in tables} == {"events", "safety_verdicts"}
    rows = client.query(
        "SELECT id, direction, verdict, scores, toxicity_backend, text_chars, version "
        "FROM safety_verdicts FINAL ORDER BY id").result_rows
    occurred = built[0].envelope.occurred_at
    assert [r[0] for r in rows] == ["bench-t-0", "bench-t-1", "bench-t-2"]
    assert rows[0][1:6] == ("input", "allow", {"toxicity": pytest.approx(0.01),
                                               "injection": pytest.approx(0.02)},
                            "lexicon", 120)
    assert rows[0][6] == occurred.seconds * 1000 + occurred.nanos // 1_000_000
    events = client.query("SELECT topic, producer, tenant FROM events FINAL").result_rows
    assert events == [("llmops.safety.verdict-issued.v1", "safety", "bench-t")] * 3
