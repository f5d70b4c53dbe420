"""Every panel's SQL, macros expanded, on a real chDB store holding the sample data set: each
panel's values are computed here in plain Python from the sample's true rows and compared.
The sample also holds redeliveries and stale versions of its rows (FINAL must hide them), a
second tenant (the tenant filter must hide it) and rows outside the range."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from clickhouse_connect.driver.client import Client

from llmops_observability import panels
from llmops_observability.panels import sample
from llmops_observability.panels.sample import END, INTERVAL_SECONDS, START, Sample
from llmops_observability.testing import fresh_client

pytestmark = pytest.mark.integration

Row = dict[str, Any]
TABLES = ("answers", "scores", "safety_verdicts", "document_events", "drift", "events",
          "dead_letters", "registry_changes", "training_steps")
CHECKS: dict[str, Callable[[Client, Sample], None]] = {}


@pytest.fixture(scope="module")
def store() -> Iterator[tuple[Client, Sample]]:
    # One chDB engine per process: a database of its own on the shared engine folder.
    client = fresh_client("panels")
    for table in TABLES:
        # Stale versions and redeliveries stay in their own parts: only FINAL hides them.
        client.command(f"SYSTEM STOP MERGES {table}")
    data = sample.load(client)
    yield client, data
    client.close()


def run(client: Client, panel_id: str, tenant: str | None = "acme",
        since: datetime = START, until: datetime = END) -> list[tuple[Any, ...]]:
    return panels.run(client, panel_id, since=since, until=until,
                      interval_seconds=INTERVAL_SECONDS, tenant=tenant).rows


def truth(s: Sample, table: str, tenant: str | None = "acme") -> list[Row]:
    return [r for r in s.rows[table] if (tenant is None or r["tenant"] == tenant)
            and START <= r["ts"] <= END]


def bucket(ts: datetime) -> datetime:
    seconds = int(ts.timestamp()) // INTERVAL_SECONDS * INTERVAL_SECONDS
    return datetime.fromtimestamp(seconds, UTC)


def pct(values: list[float], q: float) -> float:
    # quantileExactInclusive is numpy's default (linear) percentile.
    return float(np.percentile(values, q * 100))


def check(panel_id: str) -> Callable[[Callable[[Client, Sample], None]],
                                     Callable[[Client, Sample], None]]:
    def register(fn: Callable[[Client, Sample], None]) -> Callable[[Client, Sample], None]:
        CHECKS[panel_id] = fn
        return fn
    return register


def keyed(rows: list[tuple[Any, ...]], n_keys: int) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out = {row[:n_keys]: row[n_keys:] for row in rows}
    assert len(out) == len(rows), "one row per key"
    return out


def assert_close(got: dict[Any, Any], want: dict[Any, Any]) -> None:
    assert sorted(got) == sorted(want)
    for key, values in want.items():
        assert got[key] == pytest.approx(values, rel=1e-9), key


# ---- answers ------------------------------------------------------------------------------

def _stages(r: Row) -> dict[str, float]:
    return {**r["stage_ms"], "total": r["duration_ms"]}


@check("answers.latency_by_stage")
def _latency_by_stage(c: Client, s: Sample) -> None:
    values: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in truth(s, "answers"):
        for stage, ms in _stages(r).items():
            values[(bucket(r["ts"]), stage)].append(ms)
    want = {k: tuple(pct(v, q) for q in (0.5, 0.95, 0.99)) for k, v in values.items()}
    got = keyed(run(c, "answers.latency_by_stage"), 2)
    assert_close(got, want)
    assert len({k[0] for k in got}) == 5 and {k[1] for k in got} == {
        "retrieval", "generation", "total"}


@check("answers.latency_summary")
def _latency_summary(c: Client, s: Sample) -> None:
    got = keyed(run(c, "answers.latency_summary"), 1)
    # Retrieval took 1, 2, ..., 100 ms.
    assert got[("retrieval",)] == pytest.approx((50.5, 95.05, 99.01))
    values: dict[str, list[float]] = defaultdict(list)
    for r in truth(s, "answers"):
        for stage, ms in _stages(r).items():
            values[stage].append(ms)
    assert_close(got, {(k,): tuple(pct(v, q) for q in (0.5, 0.95, 0.99))
                       for k, v in values.items()})
    globex = keyed(run(c, "answers.latency_summary", tenant="globex"), 1)
    assert globex[("retrieval",)] == pytest.approx((1000.0, 1000.0, 1000.0))
    everyone = keyed(run(c, "answers.latency_summary", tenant=None), 1)
    assert everyone[("retrieval",)][2] == pytest.approx(pct(
        [r["stage_ms"]["retrieval"] for r in truth(s, "answers", None)], 0.99))


@check("answers.tokens_per_second")
def _tokens_per_second(c: Client, s: Sample) -> None:
    tokens: Counter[tuple[Any, ...]] = Counter()
    seconds: Counter[tuple[Any, ...]] = Counter()
    for r in truth(s, "answers"):
        if not r["cached"] and r["output_tokens"] > 0 and r["stage_ms"]["generation"] > 0:
            key = (bucket(r["ts"]), r["response_model"])
            tokens[key] += r["output_tokens"]
            seconds[key] += r["stage_ms"]["generation"] / 1000
    assert_close(keyed(run(c, "answers.tokens_per_second"), 2),
                 {k: (tokens[k] / seconds[k],) for k in tokens})


@check("answers.ttft")
def _ttft(c: Client, s: Sample) -> None:
    values: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in truth(s, "answers"):
        if not r["cached"] and r["time_to_first_token_ms"] > 0:
            values[(bucket(r["ts"]),)].append(r["time_to_first_token_ms"])
    assert_close(keyed(run(c, "answers.ttft"), 1),
                 {k: (pct(v, 0.5), pct(v, 0.95)) for k, v in values.items()})


@check("answers.errors_by_reason")
def _errors(c: Client, s: Sample) -> None:
    want = Counter((bucket(r["ts"]), r["error"]) for r in truth(s, "answers") if r["error"])
    rows = run(c, "answers.errors_by_reason")
    assert keyed(rows, 2) == {k: (n,) for k, n in want.items()}
    totals = Counter[str]()
    for _, reason, n in rows:
        totals[reason] += n
    assert totals == {"GENERATION_UNAVAILABLE": 5, "INPUT_BLOCKED": 4}
    assert {r[1] for r in run(c, "answers.errors_by_reason", tenant="globex")} == {"INTERNAL"}


@check("answers.traffic_by_model")
def _traffic(c: Client, s: Sample) -> None:
    counts = Counter((bucket(r["ts"]), r["response_model"]) for r in truth(s, "answers")
                     if r["response_model"])
    per_bucket = Counter[datetime]()
    for (b, _), n in counts.items():
        per_bucket[b] += n
    got = keyed(run(c, "answers.traffic_by_model"), 2)
    assert_close(got, {k: (n / per_bucket[k[0]],) for k, n in counts.items()})
    for b in per_bucket:
        assert sum(v[0] for k, v in got.items() if k[0] == b) == pytest.approx(1.0)
    assert {k[1] for k in got} == set(sample.MODELS)


# ---- quality and safety ---------------------------------------------------------------------

def _feedback(s: Sample, tenant: str = "acme") -> list[Row]:
    return [r for r in truth(s, "scores", tenant) if r["source"] == "feedback"]


@check("feedback.ratings")
def _ratings(c: Client, s: Sample) -> None:
    want = Counter((bucket(r["ts"]), "positive" if r["value"] > 0 else "negative")
                   for r in _feedback(s))
    assert keyed(run(c, "feedback.ratings"), 2) == {k: (n,) for k, n in want.items()}


@check("feedback.share_positive")
def _share_positive(c: Client, s: Sample) -> None:
    rows = _feedback(s)
    assert len(rows) == 41
    [(share,)] = run(c, "feedback.share_positive")
    assert share == pytest.approx(sum(r["value"] > 0 for r in rows) / 41)
    assert share == pytest.approx(27 / 41)
    assert run(c, "feedback.share_positive", tenant="globex") == [(0.0,)]
    assert run(c, "feedback.share_positive", tenant="nobody") == [(None,)]


@check("feedback.by_model")
def _by_model(c: Client, s: Sample) -> None:
    model = {r["id"]: r["response_model"] for r in s.rows["answers"] if r["tenant"] == "acme"}
    ratings: dict[str, list[bool]] = defaultdict(list)
    for r in _feedback(s):
        ratings[model.get(r["request_id"]) or "(unknown)"].append(r["value"] > 0)
    want = {(m,): (sum(v) / len(v),) for m, v in ratings.items()}
    got = keyed(run(c, "feedback.by_model"), 1)
    assert_close(got, want)
    assert got[("(unknown)",)] == (1.0,) and len(got) == 3


@check("quality.groundedness")
def _groundedness(c: Client, s: Sample) -> None:
    values: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in truth(s, "answers"):
        if r["groundedness"] is not None:
            values[(bucket(r["ts"]), r["response_model"])].append(r["groundedness"])
    assert_close(keyed(run(c, "quality.groundedness"), 2),
                 {k: (statistics.fmean(v),) for k, v in values.items()})


@check("quality.weak_retrieval")
def _weak(c: Client, s: Sample) -> None:
    flags: dict[tuple[Any, ...], list[bool]] = defaultdict(list)
    for r in truth(s, "answers"):
        if r["error"] != "INPUT_BLOCKED" and r["best_retrieval_score"] > 0:
            flags[(bucket(r["ts"]),)].append(
                r["best_retrieval_score"] < panels.WEAK_RETRIEVAL_THRESHOLD)
    assert_close(keyed(run(c, "quality.weak_retrieval"), 1),
                 {k: (sum(v) / len(v),) for k, v in flags.items()})
    assert run(c, "quality.weak_retrieval", tenant="globex") == [(START, 0.0)]


@check("safety.findings_by_type")
def _findings(c: Client, s: Sample) -> None:
    want = Counter((bucket(r["ts"]), cat) for r in truth(s, "safety_verdicts")
                   for cat in r["finding_categories"])
    got = keyed(run(c, "safety.findings_by_type"), 2)
    assert got == {k: (n,) for k, n in want.items()}
    assert {k[1] for k in got} == {"EMAIL", "PHONE", "PROMPT_INJECTION"}


@check("safety.verdicts")
def _verdicts(c: Client, s: Sample) -> None:
    want = Counter(f"{r['direction']} {r['verdict']}" for r in truth(s, "safety_verdicts"))
    assert run(c, "safety.verdicts") == sorted(want.items())
    assert run(c, "safety.verdicts", tenant="globex") == [("input block", 1)]


# ---- ingestion ----------------------------------------------------------------------------------

@check("ingestion.chunks_per_second")
def _chunks_per_second(c: Client, s: Sample) -> None:
    chunks = Counter[tuple[Any, ...]]()
    for r in truth(s, "document_events"):
        if r["event"] in ("chunks_created", "chunks_indexed"):
            chunks[(bucket(r["ts"]), r["event"])] += r["chunks"]
    assert_close(keyed(run(c, "ingestion.chunks_per_second"), 2),
                 {k: (n / INTERVAL_SECONDS,) for k, n in chunks.items()})


@check("ingestion.index_freshness")
def _freshness(c: Client, s: Sample) -> None:
    versions: dict[str, list[Row]] = defaultdict(list)
    for r in s.rows["document_events"]:
        if r["tenant"] == "acme":
            versions[r["document_id"]].append(r)
    freshness: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for events in versions.values():
        indexed = [e for e in events if e["event"] == "chunks_indexed"]
        if len({e["batch_index"] for e in indexed}) < max(e["batch_count"] for e in indexed):
            continue
        created = min(e["ts"] for e in events if e["event"] == "chunks_created")
        # The latest submission before the first chunks; none (submitted over gRPC): those.
        started = max((e["ts"] for e in events if e["event"] == "submitted"
                       and e["ts"] <= created), default=created)
        last = max(e["ts"] for e in indexed)
        if START <= last <= END:
            freshness[(bucket(last),)].append((last - started) / timedelta(milliseconds=1))
    # Documents 0-4 (document 0 submitted before the range, document 4 over gRPC: from its
    # first chunks), not 5 (never fully indexed).
    assert sorted(v for vs in freshness.values() for v in vs) == [4000, 5000, 6000, 7000, 7000]
    assert_close(keyed(run(c, "ingestion.index_freshness"), 1),
                 {k: (pct(v, 0.5), pct(v, 0.95), max(v)) for k, v in freshness.items()})
    assert [r[1:] for r in run(c, "ingestion.index_freshness", tenant="globex")] == [
        (100000.0, 100000.0, 100000)]


# ---- drift -------------------------------------------------------------------------------------

@check("drift.centroid_distance")
def _distance(c: Client, s: Sample) -> None:
    want = {(bucket(r["ts"]), r["reference"]): (r["centroid_distance"], r["threshold"])
            for r in truth(s, "drift")}
    assert_close(keyed(run(c, "drift.centroid_distance"), 2), want)


@check("drift.auc")
def _auc(c: Client, s: Sample) -> None:
    want = {(bucket(r["ts"]), r["reference"]): (r["roc_auc"],) for r in truth(s, "drift")
            if r["roc_auc"] is not None}
    assert len(want) == 4
    assert_close(keyed(run(c, "drift.auc"), 2), want)


@check("drift.detections")
def _detections(c: Client, s: Sample) -> None:
    want = sorted(((r["ts"], r["reference"], r["centroid_distance"], r["roc_auc"],
                    r["window_start"], r["window_end"]) for r in truth(s, "drift")
                   if r["detected"]), reverse=True)
    got = [(r[0], r[2], r[3], r[5], r[8], r[9]) for r in run(c, "drift.detections")]
    assert len(got) == 4
    assert got == want
    assert [r[1] for r in run(c, "drift.detections", tenant=None)] == [
        "acme", "acme", "acme", "acme", "globex"]


# ---- platform -------------------------------------------------------------------------------------

@check("platform.events_per_topic")
def _events(c: Client, s: Sample) -> None:
    counts = Counter((bucket(r["ts"]), r["topic"]) for r in truth(s, "events"))
    assert_close(keyed(run(c, "platform.events_per_topic"), 2),
                 {k: (n / INTERVAL_SECONDS,) for k, n in counts.items()})
    assert sum(v[0] for v in keyed(run(c, "platform.events_per_topic"), 2).values()) == \
        pytest.approx(90 / INTERVAL_SECONDS)


@check("platform.dead_letters")
def _dead_letters(c: Client, s: Sample) -> None:
    assert run(c, "platform.dead_letters") == [
        (f"{sample.TOPIC_A}.dlq / DECODE_ERROR", 3), (f"{sample.TOPIC_B}.dlq / INVALID_TENANT", 1)]
    assert run(c, "platform.dead_letters", tenant=None)[0] == (
        f"{sample.TOPIC_A}.dlq / DECODE_ERROR", 4)


@check("registry.changes")
def _registry(c: Client, s: Sample) -> None:
    want = sorted(((r["ts"], r["tenant"], r["kind"], r["name"], r["to_version"])
                   for r in truth(s, "registry_changes", None) if r["tenant"] in ("acme", "")),
                  reverse=True)
    assert [(r[0], r[1], r[2], r[3], r[6]) for r in run(c, "registry.changes")] == want
    assert [r[1] for r in run(c, "registry.changes", tenant="globex")] == ["globex", ""]


# ---- rollout ----------------------------------------------------------------------------------

@check("rollout.version_metrics")
def _version_metrics(c: Client, s: Sample) -> None:
    negative = Counter(r["request_id"] for r in s.rows["scores"]
                       if r["tenant"] == "acme" and r["source"] == "feedback"
                       and r["value"] < 0 and r["ts"] >= START)
    by_model: dict[str, list[Row]] = defaultdict(list)
    for r in truth(s, "answers"):
        if r["response_model"] and not r["cached"]:
            by_model[r["response_model"]].append(r)
    want = {}
    for model, rows in by_model.items():
        scored = [r["groundedness"] for r in rows if r.get("groundedness") is not None]
        want[(model,)] = (
            len(rows),
            sum(r.get("error", "") not in ("", "INPUT_BLOCKED", "OUTPUT_BLOCKED") for r in rows),
            pct([r["duration_ms"] for r in rows], 0.95),
            sum(r.get("output_safety") == "block" for r in rows),
            statistics.fmean(scored) if scored else None,
            sum(negative[r["id"]] for r in rows))
    got = keyed(run(c, "rollout.version_metrics"), 1)
    assert sorted(got) == sorted(want) and len(want) >= 2
    for key, values in want.items():
        assert got[key][:2] == values[:2] and got[key][3] == values[3], key
        assert got[key][2] == pytest.approx(values[2], rel=1e-9), key
        assert got[key][4] == pytest.approx(values[4], rel=1e-6), key
        assert got[key][5] == values[5], key


# ---- every panel --------------------------------------------------------------------------------

@check("training.loop_outcomes")
def _loop_outcomes(c: Client, s: Sample) -> None:
    rows = truth(s, "training_steps")
    last = {r["loop_id"]: max((x for x in rows if x["loop_id"] == r["loop_id"]),
                              key=lambda x: x["sequence"])["step"] for r in rows}
    assert dict(run(c, "training.loop_outcomes")) == dict(Counter(last.values()))
    assert dict(run(c, "training.loop_outcomes")) == {
        "canary_promoted": 1, "job_failed": 1, "skipped": 1, "gate_refused": 1}


@check("training.loop_steps")
def _loop_steps(c: Client, s: Sample) -> None:
    got = run(c, "training.loop_steps")
    want = sorted(truth(s, "training_steps"), key=lambda r: (r["ts"], r["sequence"]),
                  reverse=True)
    assert [(r[0], r[2], r[4], r[5]) for r in got] == \
        [(r["ts"], r["loop_id"], r["step"], r["job_id"]) for r in want]
    promoted = next(r for r in got if r[4] == "canary_promoted")
    assert (promoted[3], promoted[6], promoted[7], promoted[8], promoted[9]) == \
        ("dataset", "smollm2@3", 2, "ds-eval", "canary_promoted of ctl-1")
    assert next(r for r in got if r[4] == "triggered")[6] == "smollm2"


def test_every_panel_has_a_check() -> None:
    assert sorted(CHECKS) == sorted(panels.PANELS)


@pytest.mark.parametrize("panel_id", sorted(panels.PANELS))
def test_panel_values(store: tuple[Client, Sample], panel_id: str) -> None:
    client, data = store
    result = panels.run(client, panel_id, since=START, until=END,
                        interval_seconds=INTERVAL_SECONDS, tenant="acme")
    assert result.rows, "the sample has data for every panel"
    assert [name for name, _ in result.columns] and "$" not in result.sql
    CHECKS[panel_id](client, data)


@pytest.mark.parametrize("panel_id", sorted(panels.PANELS))
def test_panel_shows_nothing_of_other_tenants_or_times(store: tuple[Client, Sample],
                                                       panel_id: str) -> None:
    client, _ = store
    empty = {"stat": [(None,)]}.get(panels.PANELS[panel_id].kind, [])
    nobody = run(client, panel_id, tenant="nobody")
    if panel_id == "registry.changes":
        # Shared aliases and labels (tenant '') belong to every tenant.
        assert {r[1] for r in nobody} == {""}
    else:
        assert nobody == empty
    day_before = run(client, panel_id, since=START - timedelta(days=3),
                     until=START - timedelta(days=2))
    assert day_before == empty


def test_the_store_holds_stale_versions_and_redeliveries(store: tuple[Client, Sample]) -> None:
    client, data = store
    for table in TABLES:
        raw = client.query(f"SELECT count() FROM {table}").result_rows[0][0]
        final = client.query(f"SELECT count() FROM {table} FINAL").result_rows[0][0]
        assert final == len(data.rows[table])
        assert raw >= 2 * final, table


def test_dashboards_tenant_variable_lists_the_tenants(store: tuple[Client, Sample]) -> None:
    client, _ = store
    from llmops_observability.panels import grafana

    sql = panels.expand(grafana.tenant_variable()["query"], START, END, 0, None)
    assert client.query(sql).result_rows == [("acme",), ("globex",)]


def test_registry_annotations(store: tuple[Client, Sample]) -> None:
    client, _ = store
    [annotation] = panels.ANNOTATIONS

    def rows(tenant: str | None) -> list[tuple[Any, ...]]:
        sql = panels.expand(annotation.sql, START, END, 0, tenant)
        return [(t.replace(tzinfo=UTC), text, tags)
                for t, text, tags in client.query(sql).result_rows]

    assert rows("acme") == [
        (START + timedelta(minutes=10), "model_alias smollm2 production: v1 -> v2",
         ["model_alias", "smollm2"]),
        (START + timedelta(minutes=20), "prompt_label rag-answer production: v0 -> v1",
         ["prompt_label", "rag-answer"]),
        (START + timedelta(minutes=30), "model_version smollm2: v0 -> v2",
         ["model_version", "smollm2"])]
    assert [r[1] for r in rows("globex")] == [
        "prompt_label rag-answer production: v0 -> v1", "model_alias other production: v0 -> v1"]
    assert len(rows(None)) == 4


def test_panel_types_and_times(store: tuple[Client, Sample]) -> None:
    client, _ = store
    result = panels.run(client, "answers.latency_by_stage", since=START, until=END,
                        interval_seconds=0, tenant=None)
    assert result.columns[:2] == [("time", "DateTime64(3, 'UTC')"), ("stage", "String")]
    # Automatic interval over an hour: 60 s buckets, UTC-aware times.
    assert {r[0] for r in result.rows} >= {START, START + timedelta(minutes=1)}
    assert all(r[0].tzinfo is UTC for r in result.rows)
    first = result.wire_rows()[0]
    assert first[0] == "2026-03-02T10:00:00Z" and isinstance(first[2], float)
    detections = panels.run(client, "drift.detections", since=START, until=END,
                            interval_seconds=0, tenant="acme").wire_rows()
    assert detections[0][:3] == ["2026-03-02T10:51:00Z", "acme", "corpus"]
    assert detections[0][8:] == ["2026-03-02T09:50:00Z", "2026-03-02T10:50:00Z"]
    with pytest.raises(KeyError):
        panels.run(client, "no.such_panel", since=START, until=END, interval_seconds=0,
                   tenant=None)
