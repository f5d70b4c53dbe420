"""The raw batch consumer (llmops_kit.batch_consumer) on the real broker: commits only after a
batch was handled, a failed batch (and the one prepared behind it) comes again, the next batch
is prepared while one is handled, a handler's exception is logged, and a rebalance in the
middle of a batch loses nothing and handles nothing twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from llmops_kit.batch_consumer import BatchConsumer, Records
from llmops_kit.kafka import ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import eventually, group_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

Where = tuple[str, int, int]


async def _produce(kafka: KafkaSettings, topic: str, n: int, partitions: int = 1) -> None:
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        for i in range(n):
            await producer.send(topic, str(i).encode(), key=b"k", partition=i % partitions)
        await producer.flush()
    finally:
        await producer.stop()


async def _committed(kafka: KafkaSettings, group: str) -> dict[tuple[str, int], int]:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


class Script:
    """prepare/handle that log what happened, with a handle that fails or raises as told."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.log: list[tuple[str, int]] = []  # (step, first offset of the batch)
        self.ok: list[Where] = []  # records of batches handled successfully
        self.fail_next: list[str] = []  # "false" or "raise", one per batch, in order
        self.committed_at_failure: list[dict[tuple[str, int], int]] = []
        self.on_failure: Callable[[], Awaitable[dict[tuple[str, int], int]]] | None = None

    def prepare(self, records: Records) -> int:
        self.log.append(("prepare", records[0].offset))
        return len(records)

    async def handle(self, records: Records, prepared: int) -> bool:
        assert prepared == len(records)
        self.log.append(("start", records[0].offset))
        await asyncio.sleep(self.delay)
        if self.fail_next:
            how = self.fail_next.pop(0)
            if self.on_failure is not None:
                self.committed_at_failure.append(await self.on_failure())
            self.log.append(("failed", records[0].offset))
            if how == "raise":
                raise RuntimeError("insert refused")
            return False
        self.ok.extend((r.topic, r.partition, r.offset) for r in records)
        self.log.append(("end", records[0].offset))
        return True


def _consumer(kafka: KafkaSettings, topic: str, group: str, script: Script,
              max_records: int) -> BatchConsumer[int]:
    return BatchConsumer(kafka, [topic], group, script.prepare, script.handle,
                         client_id=group, max_records=max_records, batch_timeout_ms=50)


@pytest.mark.parametrize("how", ["false", "raise"])
async def test_a_failed_batch_is_not_committed_and_comes_again(
        kafka: KafkaSettings, unique: str, how: str, caplog: pytest.LogCaptureFixture) -> None:
    topic, group = f"test-raw-{unique}", f"g-{unique}"
    await ensure_topics(kafka, [topic], partitions=1)
    await _produce(kafka, topic, 30)
    script = Script(delay=0.2)
    script.fail_next = [how]
    script.on_failure = lambda: _committed(kafka, group)
    consumer = _consumer(kafka, topic, group, script, max_records=10)
    with caplog.at_level(logging.ERROR, logger="llmops_kit.batch_consumer"):
        await consumer.start()
        try:
            await eventually(lambda: group_caught_up(kafka, group, [topic]), timeout=60)
        finally:
            await consumer.stop()
    # Nothing was committed while the first batch failed; every record was handled once
    # successfully, in order; the failed batch came again first.
    assert script.committed_at_failure == [{}]
    assert script.ok == [(topic, 0, i) for i in range(30)]
    assert await _committed(kafka, group) == {(topic, 0): 30}
    handled = [(step, at) for step, at in script.log if step != "prepare"]
    assert handled[:4] == [("start", 0), ("failed", 0), ("start", 0), ("end", 0)]
    # The batch prepared behind the failed one was not handled before the failed one again.
    if how == "raise":  # never vanishes: logged with its traceback
        [record] = [r for r in caplog.records if "rewinding" in r.getMessage()]
        assert record.exc_info is not None and "insert refused" in str(record.exc_info[1])


async def test_the_next_batch_is_prepared_while_one_is_handled_one_in_flight(
        kafka: KafkaSettings, unique: str) -> None:
    topic, group = f"test-raw-{unique}", f"g-{unique}"
    await ensure_topics(kafka, [topic], partitions=1)
    await _produce(kafka, topic, 40)
    script = Script(delay=0.3)
    consumer = _consumer(kafka, topic, group, script, max_records=10)
    await consumer.start()
    try:
        await eventually(lambda: group_caught_up(kafka, group, [topic]), timeout=60)
    finally:
        await consumer.stop()
    steps = script.log
    # Batch k+1 is prepared before batch k ended (the pipeline) ...
    for k, nxt in ((0, 10), (10, 20), (20, 30)):
        assert steps.index(("prepare", nxt)) < steps.index(("end", k)), steps
    # ... and handled only after batch k ended (one in flight, settled in order).
    for k, nxt in ((0, 10), (10, 20), (20, 30)):
        assert steps.index(("end", k)) < steps.index(("start", nxt)), steps
    assert script.ok == [(topic, 0, i) for i in range(40)]


async def test_a_rebalance_in_the_middle_of_a_batch_loses_nothing_and_repeats_nothing(
        kafka: KafkaSettings, unique: str) -> None:
    topic, group = f"test-raw-{unique}", f"g-{unique}"
    await ensure_topics(kafka, [topic], partitions=4)
    await _produce(kafka, topic, 800, partitions=4)
    first, second = Script(delay=0.25), Script(delay=0.25)
    a = _consumer(kafka, topic, group, first, max_records=40)
    b = _consumer(kafka, topic, group, second, max_records=40)
    await a.start()
    try:
        async def a_is_busy() -> bool:
            return len(first.ok) >= 80

        await eventually(a_is_busy, timeout=60)
        await b.start()  # joins while `a` has a batch in flight: its partitions are revoked
        await eventually(lambda: group_caught_up(kafka, group, [topic]), timeout=90)
    finally:
        await b.stop()
        await a.stop()
    handled = first.ok + second.ok
    assert second.ok, "the second member got partitions"
    assert sorted(handled) == sorted((topic, i % 4, i // 4) for i in range(800))  # each once



async def test_a_batch_whose_prepare_fails_comes_again_not_skipped(
        kafka: KafkaSettings, unique: str, caplog: pytest.LogCaptureFixture) -> None:
    topic, group = f"test-raw-{unique}", f"g-{unique}"
    await ensure_topics(kafka, [topic], partitions=1)
    await _produce(kafka, topic, 30)
    script = Script()
    prepare, failed = script.prepare, []

    def flaky(records: Records) -> int:
        if not failed:
            failed.append(records[0].offset)
            raise ValueError("a bug while preparing")
        return prepare(records)

    consumer = BatchConsumer(kafka, [topic], group, flaky, script.handle, client_id=group,
                             max_records=10, batch_timeout_ms=50)
    with caplog.at_level(logging.ERROR, logger="llmops_kit.batch_consumer"):
        await consumer.start()
        try:
            await eventually(lambda: group_caught_up(kafka, group, [topic]), timeout=60)
        finally:
            await consumer.stop()
    assert failed == [0]
    assert script.ok == [(topic, 0, i) for i in range(30)]  # nothing skipped
    assert any("preparing a batch" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_the_bus_runs_a_raw_consumer_and_reports_its_lag(
        kafka: KafkaSettings, unique: str) -> None:
    from llmops_kit.kafka import EventBus

    topic, group = f"test-raw-{unique}", f"g-{unique}"
    await ensure_topics(kafka, [topic], partitions=1)
    await _produce(kafka, topic, 30)
    script = Script(delay=0.5)
    bus = EventBus(kafka, client_id=group)
    bus.subscribe_raw([topic], group, script.prepare, script.handle, max_records=10,
                      batch_timeout_ms=50)
    await bus.start()
    try:
        async def busy() -> bool:
            return ("start", 0) in script.log

        await eventually(busy, timeout=60)
        behind = await bus.lag.refresh()
        # The first batch is in flight, the second prepared: 10 or more records still ahead.
        assert 10 <= behind[(topic, "0", group)] <= 30
        await eventually(lambda: group_caught_up(kafka, group, [topic]), timeout=60)
        assert (await bus.lag.refresh())[(topic, "0", group)] == 0
    finally:
        await bus.stop()
    assert script.ok == [(topic, 0, i) for i in range(30)]
