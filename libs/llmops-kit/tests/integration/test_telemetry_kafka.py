"""Consumer metrics and trace propagation on the real Kafka broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from llmops.ingestion.v1 import events_pb2
from llmops_kit import events, tracing
from llmops_kit.kafka import Batch, EventBus, ensure_topics
from llmops_kit.metrics import kit_metrics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "it"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "active", lambda: True)
    yield exporter
    provider.shutdown()


def value(name: str, **labels: str) -> float | None:
    return kit_metrics().registry.get_sample_value(name, labels)


async def test_lag_shows_the_backlog_and_drains_to_zero_with_records_and_dead_letters_counted(
        kafka: KafkaSettings, unique: str, spans: InMemorySpanExporter) -> None:
    et = events.EventType(f"llmops.test-{unique}.deleted.v1", events_pb2.DocumentDeleted)
    group = f"g-{unique}"
    await ensure_topics(kafka, [et.topic], partitions=1)
    publisher = EventBus(kafka, client_id=f"pub-{unique}")
    await publisher.start()
    try:
        with tracing.tracer().start_as_current_span("request") as request:
            for i in range(10):
                await publisher.publish(et, events_pb2.DocumentDeleted(
                    envelope=events.make_envelope("test", tenant="acme"), document_id=f"d{i}"),
                    b"k")
    finally:
        await publisher.stop()
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        await producer.send_and_wait(et.topic, b"\x08\x96\x01garbage", key=b"k")
    finally:
        await producer.stop()

    gate = asyncio.Event()
    handled: list[str] = []

    async def handler(batch: Batch[events_pb2.DocumentDeleted]) -> None:
        await gate.wait()
        handled.extend(item.event.document_id for item in batch.items)

    consumer = EventBus(kafka.model_copy(update={"lag_refresh_seconds": 0.2}),
                        client_id=f"sub-{unique}")
    consumer.subscribe_batch(et, group, handler, max_records=1)
    lag = {"topic": et.topic, "partition": "0", "group": group}
    await consumer.start()
    try:
        # One record is with the (blocked) handler; the other ten wait behind it.
        async def backlog() -> bool:
            return value("llmops_consumer_lag", **lag) == 10
        await eventually(backlog, timeout=60)
        gate.set()

        async def drained() -> bool:
            return value("llmops_consumer_lag", **lag) == 0 and len(handled) == 10 and \
                value("llmops_consumer_records_processed_total",
                      topic=et.topic, group=group) == 11
        await eventually(drained, timeout=60)
        assert value("llmops_consumer_records_dead_lettered_total", topic=et.topic,
                     group=group, reason="MALFORMED_PROTOBUF") == 1
        assert value("llmops_consumer_batch_duration_seconds_count",
                     topic=et.topic, group=group) == 11
    finally:
        await consumer.stop()
    # A stopped bus owns no partitions: its lag series are gone.
    assert value("llmops_consumer_lag", **lag) is None

    # Every batch of a published event continued the publishing request's trace.
    consumed = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert len(consumed) == 11 and {s.name for s in consumed} == {f"process {et.topic}"}
    traced = [s for s in consumed if s.parent is not None]
    assert len(traced) == 10
    assert {s.context.trace_id for s in traced} == {request.get_span_context().trace_id}
    assert all((s.attributes or {})["messaging.consumer.group.name"] == group for s in consumed)
