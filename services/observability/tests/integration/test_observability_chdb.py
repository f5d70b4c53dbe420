"""The store on real chDB: rows of every event kind, replays, tenant and document deletion."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from llmops_observability.adapters.store import TENANT_TABLES, ClickHouseStore
from llmops_observability.api.mapping import MappingOptions, add_event
from llmops_observability.rows import Rows

pytestmark = pytest.mark.integration

OPTIONS = MappingOptions(weak_retrieval_threshold=0.5, corpus_sample_rate=1.0)


@pytest.fixture
def store(ch_client: Client) -> ClickHouseStore:
    return ClickHouseStore(ch_client)


def rows_for(pairs: dict[str, Any]) -> Rows:
    rows = Rows()
    for topic, event in pairs.items():
        add_event(rows, topic, event, None, OPTIONS)
    return rows


def counts(store: ClickHouseStore, tenant: str | None = None) -> dict[str, tuple[int, float]]:
    """Rows per table under FINAL, with a sum over their versions (a fingerprint)."""
    out = {}
    for table in TENANT_TABLES:
        where = "WHERE tenant = {t:String}" if tenant is not None else ""
        n, total = store.client.query(f"SELECT count(), sum(version) FROM {table} FINAL {where}",
                                      parameters={"t": tenant or ""}).result_rows[0]
        out[table] = (int(n), float(total))
    return out


async def test_every_kind_lands_in_its_tables(store: ClickHouseStore, make: Any) -> None:
    written = await store.write(rows_for(make.every_kind()))
    assert written == {"events": 16, "document_events": 5, "corpus_sample": 3,
                       "safety_verdicts": 1, "registry_changes": 4, "answers": 1,
                       "scores": 4}
    got = {t: n for t, (n, _) in counts(store).items()}
    assert got == {"events": 16, "answers": 1, "document_events": 5, "safety_verdicts": 1,
                   "registry_changes": 4, "dead_letters": 0, "scores": 4, "corpus_sample": 3,
                   "drift": 0, "training_steps": 0}
    stage_sum, total, model = store.client.query(
        "SELECT arraySum(mapValues(stage_ms)), duration_ms, response_model FROM answers FINAL"
    ).result_rows[0]
    assert (stage_sum, total, model) == (190.0, 190.0, "smollm2@3")


async def test_a_replay_changes_nothing(store: ClickHouseStore, make: Any) -> None:
    kinds = make.every_kind()
    await store.write(rows_for(kinds))
    once = counts(store)
    await store.write(rows_for(kinds))
    await store.write(rows_for(kinds))
    assert counts(store) == once
    raw = store.client.query("SELECT count() FROM events").result_rows[0][0]
    assert raw in (16, 48)  # stored thrice until a merge; FINAL sees one


async def test_deleting_a_tenant_removes_its_rows_from_every_table(
        store: ClickHouseStore, make: Any) -> None:
    other = type(make)(tenant="globex")
    await store.write(rows_for(make.every_kind()))
    await store.write(rows_for(other.every_kind()))
    store.client.insert("drift", [["acme", make.when, "d1", "query_embedding", "corpus", 0.1,
                                   0.2, None, 0, 5, 5, make.when, make.when, 1]],
                        column_names=["tenant", "ts", "id", "metric", "reference",
                                      "centroid_distance", "threshold", "roc_auc", "detected",
                                      "current_samples", "reference_samples", "window_start",
                                      "window_end", "version"])
    globex_before = counts(store, "globex")
    removed = await store.delete_tenant("acme", make.when)
    # events (the TenantDeleted row is another tenant's), answers, document_events, safety,
    # registry (both factories' prompts are acme's own), scores, corpus_sample, drift
    assert removed == 15 + 1 + 5 + 1 + 2 + 4 + 3 + 1
    assert {t: n for t, (n, _) in counts(store, "acme").items()} == dict.fromkeys(
        TENANT_TABLES, 0)
    assert counts(store, "globex") == globex_before
    assert await store.delete_tenant("acme", make.when) == 0  # idempotent
    assert await store.deleted_tenants() == {"acme": make.when}


async def test_deleting_a_document_removes_its_document_rows_and_samples(
        store: ClickHouseStore, make: Any) -> None:
    doc = f"doc-{uuid.uuid4().hex[:6]}"
    await store.write(rows_for({
        "a": make.submitted(doc), "b": make.chunks_created(doc), "c": make.vectors(doc),
        "d": make.indexed(doc), "e": make.chunks_created("keep"), "f": make.vectors("keep"),
    }))
    await store.write(rows_for({"g": make.doc_deleted(doc, up_to=0)}))
    assert await store.delete_document("acme", doc, 0) == 4 + 3
    left = store.client.query(
        "SELECT document_id, event FROM document_events FINAL ORDER BY document_id, event"
    ).result_rows
    assert left == [(doc, "deleted"), ("keep", "chunks_created"), ("keep", "chunks_embedded")]
    assert store.client.query("SELECT DISTINCT document_id FROM corpus_sample FINAL"
                              ).result_rows == [("keep",)]
