"""The writer's raw consumer on real Kafka and chDB: a failing insert commits nothing and its
records come again; a rebalance in the middle of a batch loses no row and repeats none."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from clickhouse_connect.driver.client import Client
from google.protobuf.message import Message

from llmops_kit import events
from llmops_kit.delivery import Received
from llmops_kit.events import EventType
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import eventually, group_caught_up
from llmops_observability.adapters.store import ClickHouseStore
from llmops_observability.api import events as event_api
from llmops_observability.api.mapping import MappingOptions
from llmops_observability.rows import Rows

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


class FlakyStore(ClickHouseStore):
    """chDB, with writes that fail (ClickHouse away) while `failures` > 0, or are slow."""

    def __init__(self, client: Client, failures: int = 0, delay: float = 0.0) -> None:
        super().__init__(client)
        self.failures = failures
        self.delay = delay
        self.on_failure: Any = None
        self.committed_during_failures: list[dict[Any, int]] = []

    async def write(self, rows: Rows) -> dict[str, int]:
        if self.failures > 0:
            self.failures -= 1
            if self.on_failure is not None:
                self.committed_during_failures.append(await self.on_failure())
            raise ConnectionError("ClickHouse away")
        await asyncio.sleep(self.delay)
        return await super().write(rows)

    async def deleted_tenants(self) -> dict[str, datetime]:
        return {}


class CountingWriter(event_api.Writer):
    """Counts how often each event was mapped (once per delivery of its record)."""

    def __init__(self, store: ClickHouseStore) -> None:
        super().__init__(store, MappingOptions())
        self.mapped: Counter[str] = Counter()

    def prepare(self, items: list[Received[Message]]) -> event_api.Mapped:
        self.mapped.update(i.event.envelope.event_id for i in items)  # type: ignore[attr-defined]
        return super().prepare(items)


async def produce(kafka: KafkaSettings, et: EventType[Any], tenant: str, n: int) -> None:
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        for i in range(n):
            ev = events.SAFETY_VERDICT_ISSUED.message(
                envelope=events.make_envelope("safety", tenant=tenant, event_id=f"{tenant}-{i}"))
            await producer.send(et.topic, ev.SerializeToString(), key=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def committed(kafka: KafkaSettings, group: str) -> dict[Any, int]:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        return {tp: m.offset for tp, m in (await admin.list_consumer_group_offsets(group)).items()}
    finally:
        await admin.close()


@asynccontextmanager
async def running(kafka: KafkaSettings, writer: event_api.Writer, et: EventType[Any],
                  group: str, max_records: int) -> AsyncIterator[EventBus]:
    bus = EventBus(kafka, client_id=f"{group}-{uuid.uuid4().hex[:4]}")
    event_api.register(bus, writer, group, max_records, 50, (et,))
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


def count(client: Client, tenant: str, final: bool) -> tuple[int, int]:
    return tuple(client.query(  # type: ignore[return-value]
        f"SELECT count(), uniqExact(id) FROM safety_verdicts {'FINAL' if final else ''} "
        "WHERE tenant = {t:String}", parameters={"t": tenant}).result_rows[0])


async def test_a_failing_insert_commits_nothing_and_its_records_come_again(
        kafka: KafkaSettings, unique: str, ch_client: Client) -> None:
    et = EventType(f"llmops.test-{unique}.safety.verdict-issued",
                   events.SAFETY_VERDICT_ISSUED.message)
    group, tenant = f"observability-{unique}", f"t{unique[:8]}"
    await ensure_topics(kafka, [et.topic])
    await produce(kafka, et, tenant, 60)
    # A short retry window: the batch is rewound after about a second of failures.
    settings = kafka.model_copy(update={"retry_window_seconds": 1.0})
    store = FlakyStore(ch_client, failures=8)
    store.on_failure = lambda: committed(kafka, group)
    writer = CountingWriter(store)
    async with running(settings, writer, et, group, max_records=500):
        await eventually(lambda: group_caught_up(kafka, group, [et.topic]), timeout=120)
    assert store.failures == 0
    assert all(c == {} for c in store.committed_during_failures)  # nothing committed meanwhile
    assert min(writer.mapped.values()) >= 2  # rewound, fetched and mapped again
    assert count(ch_client, tenant, final=True) == (60, 60)


async def test_a_rebalance_in_the_middle_of_a_batch_loses_no_row_and_repeats_none(
        kafka: KafkaSettings, unique: str, ch_client: Client) -> None:
    et = EventType(f"llmops.test-{unique}.safety.verdict-issued",
                   events.SAFETY_VERDICT_ISSUED.message)
    group, tenant, n = f"observability-{unique}", f"t{unique[:8]}", 2_000
    await ensure_topics(kafka, [et.topic])  # 4 partitions
    await produce(kafka, et, tenant, n)
    first, second = (CountingWriter(FlakyStore(ch_client, delay=0.3)) for _ in range(2))
    async with running(kafka, first, et, group, max_records=100):
        async def first_is_writing() -> bool:
            return count(ch_client, tenant, final=False)[0] >= 200

        await eventually(first_is_writing, timeout=60)
        # Joins while the first has a batch in flight and the next one mapped.
        async with running(kafka, second, et, group, max_records=100):
            await eventually(lambda: group_caught_up(kafka, group, [et.topic]), timeout=120)
    assert sum(second.mapped.values()) > 0, "the second member got partitions"
    assert count(ch_client, tenant, final=True) == (n, n)
    assert count(ch_client, tenant, final=False) == (n, n)  # not even a duplicate before merges
