"""Delivery guarantees on the real broker: an unwritable DLQ, oversized records, outages versus
bad records (with gRPC health), dead-letter retention."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import TopicPartition
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmops.ingestion.v1 import events_pb2
from llmops_kit import dead_letters as dl
from llmops_kit import events, topics
from llmops_kit.app import ServiceApp
from llmops_kit.delivery import DeadLetterFailed, Delivery
from llmops_kit.errors import Unavailable
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import Batch, EventBus, ensure_topics
from llmops_kit.key_resolver import KeyResolver
from llmops_kit.settings import KafkaSettings, ServiceSettings
from llmops_kit.testing import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

Event = events_pb2.DocumentDeleted


def _event(doc: str) -> bytes:
    return Event(envelope=events.make_envelope("test", tenant="acme"),
                 document_id=doc).SerializeToString()


async def _produce(kafka: KafkaSettings, topic: str, values: list[bytes], **opts: Any) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), **opts)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k", partition=0)
    finally:
        await producer.stop()


@asynccontextmanager
async def _admin(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def _committed(admin: AIOKafkaAdminClient, group: str, topic: str) -> int | None:
    offsets = await admin.list_consumer_group_offsets(group)
    meta = offsets.get(TopicPartition(topic, 0))
    return None if meta is None or meta.offset < 0 else meta.offset


async def _topic_config(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    [resource] = response.to_object()["resources"]
    return {e["config_names"]: e["config_value"] for e in resource["config_entries"]
            if e["config_source"] == 1}


async def _wait(condition: Callable[[], bool], timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


class Seen:
    def __init__(self) -> None:
        self.docs: list[str] = []

    async def __call__(self, batch: Batch[Event]) -> None:
        self.docs.extend(item.event.document_id for item in batch.items)


class CountDlqFailures(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and isinstance(record.exc_info[1], DeadLetterFailed):
            self.count += 1


async def test_an_unwritable_dlq_never_lets_the_commit_pass_the_poison_record(
    kafka: KafkaSettings, unique: str
) -> None:
    et = events.EventType(f"llmops.test-{unique}.dlq-down.v1", Event)
    dlq, group = topics.dead_letter(et.topic), f"g-{unique}"
    await ensure_topics(kafka, [et.topic], partitions=1)
    good = [f"good-{i}" for i in range(6)]
    await _produce(kafka, et.topic, [_event(good[0]), _event(good[1]), _event(good[2]),
                                     b"\x08\x96\x01garbage",  # offset 3: poison
                                     _event(good[3]), _event(good[4]), _event(good[5])])
    failures = CountDlqFailures()
    logging.getLogger("llmops_kit.delivery").addHandler(failures)
    bus = EventBus(kafka, client_id=f"test-{unique}")
    seen = Seen()
    bus.subscribe_batch(et, group, seen, max_records=10)
    async with _admin(kafka) as admin:
        retention = (await _topic_config(admin, dlq))["retention.ms"]
        # The DLQ topic takes no record of this size: every dead-letter publish fails.
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, dlq, {
            "max.message.bytes": "64", "retention.ms": retention})])
        await bus.start()
        try:
            committed: list[int | None] = []
            await _wait(lambda: failures.count >= 2)
            # Records behind the failing batch: handling them must not commit past the poison.
            await _produce(kafka, et.topic, [_event("late-0"), _event("late-1")])
            good += ["late-0", "late-1"]
            while failures.count < 5:
                committed.append(await _committed(admin, group, et.topic))
                await asyncio.sleep(0.1)
            committed.append(await _committed(admin, group, et.topic))
            assert not bus.healthy  # the consumer reports itself degraded meanwhile
            assert seen.docs == []
            assert all(c is None or c <= 3 for c in committed), committed
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, dlq, {
                "retention.ms": retention})])
            await _wait(lambda: len(seen.docs) >= len(good))
            await _wait(lambda: bus.healthy)
            for _ in range(50):
                if await _committed(admin, group, et.topic) == 9:
                    break
                await asyncio.sleep(0.1)
            assert await _committed(admin, group, et.topic) == 9
        finally:
            await bus.stop()
            logging.getLogger("llmops_kit.delivery").removeHandler(failures)
    assert sorted(seen.docs) == sorted(good)  # every good record exactly once
    letters = await read_topic(kafka, dlq, 1, timeout=10)
    assert [(dict(r.headers)[dl.HEADER_DLQ_REASON], dict(r.headers)[dl.HEADER_DLQ_OFFSET])
            for r in letters] == [(b"MALFORMED_PROTOBUF", b"3")]


async def test_an_oversized_record_is_dead_lettered_bounded_and_the_partition_moves_on(
    kafka: KafkaSettings, unique: str
) -> None:
    et = events.EventType(f"llmops.test-{unique}.big.v1", Event)
    limits = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers,
                           max_record_bytes=8 * 1024 * 1024, dlq_payload_bytes=4096)
    await ensure_topics(limits, [et.topic], partitions=1)
    big = bytes(range(256)) * (10 * 4096)  # 10 MiB: the broker takes it, this consumer won't
    await _produce(kafka, et.topic, [big, _event("after-big")],
                   max_request_size=12 * 1024 * 1024)
    bus = EventBus(limits, client_id=f"test-{unique}")
    seen = Seen()
    bus.subscribe_batch(et, f"g-{unique}", seen)
    await bus.start()
    try:
        await _wait(lambda: seen.docs == ["after-big"])
    finally:
        await bus.stop()
    [letter] = await read_topic(kafka, topics.dead_letter(et.topic), 1, timeout=10)
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers[dl.HEADER_DLQ_REASON] == dl.RECORD_TOO_LARGE
    assert letter.value == big[:4096]
    assert headers[dl.HEADER_DLQ_SIZE] == str(len(big) + 1)  # value + key
    assert headers[dl.HEADER_DLQ_SHA256] == hashlib.sha256(big).hexdigest()
    assert headers[dl.HEADER_DLQ_OFFSET] == "0"


class Dependency:
    """A handler whose dependency is down until `up` is set; `bad-*` records always fail."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.handled: list[str] = []
        self.outage_failures = 0

    async def __call__(self, batch: Batch[Event]) -> None:
        if not self.up.is_set():
            self.outage_failures += 1
            raise Unavailable("STORE_DOWN", "connection refused")
        for item in batch.items:
            if item.event.document_id.startswith("bad-"):
                raise ValueError(f"cannot index {item.event.document_id}")
        self.handled.extend(item.event.document_id for item in batch.items)


async def _health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        return int(reply.status)


async def test_an_outage_is_retried_not_dead_lettered_and_grpc_health_follows(
    kafka: KafkaSettings, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Backoff capped at 0.5 s instead of 5 s: six outage failures and the first attempt after
    # the dependency is back take about 3 s instead of 15 (the backoff itself: unit tests).
    monkeypatch.setattr(Delivery, "max_delay", 0.5)
    et = events.EventType(f"llmops.test-{unique}.outage.v1", Event)
    settings = ServiceSettings(grpc_port=0, kafka=KafkaSettings(
        bootstrap_servers=kafka.bootstrap_servers, max_handler_failures=3))
    await ensure_topics(settings.kafka, [et.topic], partitions=1)
    await _produce(kafka, et.topic, [_event("a"), _event("bad-1"), _event("b")])
    bus = EventBus(settings.kafka, client_id=f"test-{unique}")
    handler = Dependency()
    bus.subscribe_batch(et, f"g-{unique}", handler)
    server = GrpcServer("127.0.0.1", 0, KeyResolver(None, {}))
    app = ServiceApp(settings, bus, server, [et.topic])
    await app.start()
    try:
        assert server.port
        await _wait(lambda: handler.outage_failures >= 6)  # twice max_handler_failures
        assert await _health(server.port) == health_pb2.HealthCheckResponse.NOT_SERVING
        handler.up.set()
        await _wait(lambda: handler.handled == ["a", "b"])
        for _ in range(50):
            if await _health(server.port) == health_pb2.HealthCheckResponse.SERVING:
                break
            await asyncio.sleep(0.1)
        assert await _health(server.port) == health_pb2.HealthCheckResponse.SERVING
        letters = await read_topic(kafka, topics.dead_letter(et.topic), 1, timeout=10)
    finally:
        await app.stop()
    # Only the record that failed by itself, with the dependency up, was dead-lettered.
    assert [(dict(r.headers)[dl.HEADER_DLQ_REASON], dict(r.headers)[dl.HEADER_DLQ_OFFSET])
            for r in letters] == [(dl.HANDLER_FAILED.encode(), b"1")]
    assert dict(letters[0].headers)[dl.HEADER_DLQ_ERROR].startswith(b"failed 3 times: ValueError")


async def test_dead_letter_retention_comes_from_the_setting(
    kafka: KafkaSettings, unique: str
) -> None:
    topic = f"llmops.test-{unique}.retention.v1"
    dlq = topics.dead_letter(topic)
    first = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, dlq_retention_ms=3_600_000)
    await ensure_topics(first, [topic], partitions=1)
    async with _admin(kafka) as admin:
        assert (await _topic_config(admin, dlq))["retention.ms"] == "3600000"
        assert "retention.ms" not in await _topic_config(admin, topic)
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, dlq, {
            "retention.ms": "3600000", "max.message.bytes": "2000000"})])
        # A changed setting reaches existing DLQ topics on the next start; other overrides stay.
        second = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, dlq_retention_ms=7_200_000)
        await ensure_topics(second, [topic], partitions=1)
        assert await _topic_config(admin, dlq) == {"retention.ms": "7200000",
                                                   "max.message.bytes": "2000000"}
