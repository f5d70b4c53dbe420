"""Real Kafka into real chDB: events produced -> rows; the same events again -> nothing new;
a tenant deletion; a poison record -> its `.dlq` topic -> counted in dead_letters.

Every platform topic gets a copy of this test's own (same message type, unique name), so the
test reads only what it produced.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from llmops_kit import events, topics
from llmops_kit.events import EventType, headers_for
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import eventually, group_caught_up
from llmops_observability.adapters.store import TENANT_TABLES, ClickHouseStore
from llmops_observability.api import events as event_api
from llmops_observability.api.mapping import MappingOptions

pytestmark = pytest.mark.integration


def own_types(unique: str) -> dict[str, EventType[Any]]:
    """platform topic -> the same event type on a topic of this test's own."""
    return {t: EventType(t.replace("llmops.", f"llmops.test-{unique}.", 1),
                         events.REGISTRY[t].message) for t in topics.ALL}


async def produce(kafka: KafkaSettings, items: list[tuple[EventType[Any], Any]]) -> None:
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        for et, event in items:
            await producer.send_and_wait(
                et.topic, event.SerializeToString(), key=event.envelope.tenant_id.encode(),
                headers=[(k, v.encode()) for k, v in headers_for(event, et).items()])
    finally:
        await producer.stop()


@pytest.fixture
async def running(kafka: KafkaSettings, unique: str, ch_client: Client
                  ) -> AsyncIterator[tuple[ClickHouseStore, dict[str, EventType[Any]], str]]:
    store = ClickHouseStore(ch_client)
    types = own_types(unique)
    bus = EventBus(kafka, client_id=f"obs-test-{unique}")
    writer = event_api.Writer(store, MappingOptions(corpus_sample_rate=1.0))
    group = f"observability-{unique}"
    names = event_api.register(bus, writer, group, 500, 100, tuple(types.values()))
    await ensure_topics(kafka, names)
    await bus.start()
    try:
        yield store, types, group
    finally:
        await bus.stop()


def final_counts(store: ClickHouseStore, tenant: str) -> dict[str, tuple[int, float]]:
    out = {}
    for table in TENANT_TABLES:
        n, total = store.client.query(
            f"SELECT count(), sum(version) FROM {table} FINAL WHERE tenant = {{t:String}}",
            parameters={"t": tenant}).result_rows[0]
        out[table] = (int(n), float(total))
    return out


def events_count(store: ClickHouseStore) -> int:
    return int(store.client.query("SELECT count() FROM events FINAL").result_rows[0][0])


@pytest.mark.timeout(240)
async def test_events_become_rows_once_even_when_delivered_twice(
        kafka: KafkaSettings, running: Any, make: Any) -> None:
    store, types, group = running
    globex = type(make)(tenant="globex")
    batch = [(types[t], e) for t, e in make.every_kind().items() if t != topics.TENANT_DELETED]
    batch += [(types[topics.INFERENCE_COMPLETED], make.answer()) for _ in range(20)]
    batch += [(types[t], e) for t, e in globex.every_kind().items() if t != topics.TENANT_DELETED]
    await produce(kafka, batch)

    async def all_in() -> bool:
        return await asyncio.to_thread(events_count, store) >= len(batch)

    await eventually(all_in, timeout=120)
    assert events_count(store) == len(batch)
    acme = await asyncio.to_thread(final_counts, store, "acme")
    assert {t: n for t, (n, _) in acme.items()} == {
        "events": 15 + 20, "answers": 21, "document_events": 5, "safety_verdicts": 1,
        "registry_changes": 2, "dead_letters": 0, "scores": 3 * 21 + 1, "corpus_sample": 3,
        "drift": 0, "training_steps": 0}

    await produce(kafka, batch)  # the same events again: at-least-once delivery's duplicates

    await eventually(lambda: group_caught_up(kafka, group, [et.topic for et in types.values()]),
                     timeout=120)
    assert await asyncio.to_thread(final_counts, store, "acme") == acme
    assert await asyncio.to_thread(events_count, store) == len(batch)


@pytest.mark.timeout(240)
async def test_a_tenant_deletion_empties_every_table_of_that_tenant(
        kafka: KafkaSettings, running: Any, make: Any) -> None:
    store, types, group = running
    tenant = f"gone{uuid.uuid4().hex[:6]}"
    doomed = type(make)(tenant=tenant)
    kept = type(make)(tenant="keeper")
    batch = [(types[t], e) for f in (doomed, kept) for t, e in f.every_kind().items()
             if t != topics.TENANT_DELETED]
    await produce(kafka, batch)

    async def all_in() -> bool:
        return await asyncio.to_thread(events_count, store) == len(batch)

    await eventually(all_in, timeout=120)
    kept_before = await asyncio.to_thread(final_counts, store, "keeper")
    await produce(kafka, [(types[topics.TENANT_DELETED], doomed.tenant_deleted(tenant))])

    async def erased() -> bool:
        got = await asyncio.to_thread(final_counts, store, tenant)
        return all(n == 0 for n, _ in got.values())

    await eventually(erased, timeout=120)
    assert await asyncio.to_thread(final_counts, store, "keeper") == kept_before

    # The deleted tenant's events delivered again (a rewind, a late producer): not written.
    await produce(kafka, [(et, e) for et, e in batch if e.envelope.tenant_id == tenant])
    await eventually(lambda: group_caught_up(kafka, group, [et.topic for et in types.values()]),
                     timeout=120)
    assert all(n == 0 for n, _ in (await asyncio.to_thread(final_counts, store, tenant)).values())


@pytest.mark.timeout(240)
async def test_a_poison_record_is_dead_lettered_and_counted(
        kafka: KafkaSettings, running: Any, make: Any) -> None:
    store, types, _ = running
    target = types[topics.CHUNKS_CREATED]
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        await producer.send_and_wait(target.topic, b"\xff\xffnot a protobuf", key=b"acme/x",
                                     headers=[(events.HEADER_TENANT, b"acme")])
        await producer.send_and_wait(target.topic, b"", key=b"acme/y")
    finally:
        await producer.stop()

    async def counted() -> bool:
        rows = await asyncio.to_thread(store.client.query,
                                       "SELECT count() FROM dead_letters FINAL")
        return int(rows.result_rows[0][0]) == 2

    await eventually(counted, timeout=120)
    rows = store.client.query(
        "SELECT tenant, dlq_topic, source_topic, reason, consumer_group FROM dead_letters "
        "FINAL ORDER BY reason").result_rows
    group = next(iter(rows))[4]
    assert group.startswith("observability-")
    assert rows == [
        ("", f"{target.topic}.dlq", target.topic, "EMPTY_PAYLOAD", group),
        ("acme", f"{target.topic}.dlq", target.topic, "MALFORMED_PROTOBUF", group),
    ]
    assert events_count(store) == 0
