"""EventBus on the real Kafka broker: DLQ, manual commit, retry, resume."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from llmops.ingestion.v1 import events_pb2
from llmops_kit import events
from llmops_kit.kafka import HEADER_DLQ_REASON, Batch, EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _event(doc: str) -> events_pb2.DocumentDeleted:
    return events_pb2.DocumentDeleted(
        envelope=events.make_envelope("test", tenant="acme"), document_id=doc
    )


async def _run_consumer(
    kafka: KafkaSettings, et: events.EventType, group: str, seen: list[str], want: int,
    fail_first: int = 0,
) -> None:
    bus = EventBus(kafka, client_id=f"test-{group}")
    failures = {"left": fail_first}

    async def handler(batch: Batch[events_pb2.DocumentDeleted]) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise ConnectionError("dependency down")
        seen.extend(item.event.document_id for item in batch.items)

    bus.subscribe_batch(et, group, handler, max_records=10)
    await bus.start()
    try:
        for _ in range(300):
            if len(seen) >= want:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # let the commit of the last batch land
    finally:
        await bus.stop()


async def _dlq_records(kafka: KafkaSettings, topic: str, n: int) -> list:
    consumer = AIOKafkaConsumer(topic + ".dlq", **kafka.client_options(),
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        got: list = []
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                got.extend(records)
            if len(got) >= n:
                break
        return got
    finally:
        await consumer.stop()


async def test_poison_goes_to_dlq_good_ones_are_handled_once(
    kafka: KafkaSettings, unique: str
) -> None:
    et = events.EventType(f"llmops.test-{unique}.deleted.v1", events_pb2.DocumentDeleted)
    await ensure_topics(kafka, [et.topic], partitions=2)
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(et.topic, _event(f"good-{i}").SerializeToString(),
                                         key=b"k")
        await producer.send_and_wait(et.topic, b"\x08\x96\x01garbage", key=b"k")
        await producer.send_and_wait(et.topic, _event("v9").SerializeToString()
                                     .replace(b"", b"", 0), key=b"k")
        bad = _event("bad-version")
        bad.envelope.schema_version = 7
        await producer.send_and_wait(et.topic, bad.SerializeToString(), key=b"k")
    finally:
        await producer.stop()

    seen: list[str] = []
    await _run_consumer(kafka, et, f"g-{unique}", seen, want=6, fail_first=2)
    assert sorted(seen) == sorted([f"good-{i}" for i in range(5)] + ["v9"])

    dlq = await _dlq_records(kafka, et.topic, 2)
    reasons = sorted(dict(r.headers)[HEADER_DLQ_REASON].decode() for r in dlq)
    assert reasons == ["MALFORMED_PROTOBUF", "UNSUPPORTED_SCHEMA_VERSION"]

    # Same group again: everything was committed, nothing is delivered twice. A new record on
    # the same partition (same key) shows the consumer is live and where it resumed: waiting
    # for it, rather than for a quiet period, takes a second instead of half a minute.
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        await producer.send_and_wait(et.topic, _event("after").SerializeToString(), key=b"k")
    finally:
        await producer.stop()
    again: list[str] = []
    await _run_consumer(kafka, et, f"g-{unique}", again, want=1)
    assert again == ["after"]
