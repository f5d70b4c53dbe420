"""Telemetry in the kit: metrics settings and labels, lag, trace context and batch spans."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from llmops.ingestion.v1 import events_pb2
from llmops_kit import events, ports, tracing
from llmops_kit.consumer_lag import ConsumerLag
from llmops_kit.delivery import Batch, Delivery
from llmops_kit.grpc_server import caller_metadata
from llmops_kit.grpc_telemetry import split_method, status_of
from llmops_kit.metrics import KitMetrics
from llmops_kit.settings import KafkaSettings, ServiceSettings, service_config

pytestmark = pytest.mark.unit

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


class SafetyLike(ServiceSettings):
    model_config = service_config("LLMOPS_SAFETY_")


@pytest.fixture
def no_metrics_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test plugin sets every *_METRICS_PORT to 0 for service processes started by tests.
    for name in ports.defaults():
        if name.endswith("_METRICS_PORT"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A private TracerProvider for the kit's spans (the process's global one stays unset)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "active", lambda: True)
    yield exporter
    provider.shutdown()


def sample(metrics: KitMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


# -- settings and ports --------------------------------------------------------------------

def test_each_grpc_service_has_a_metrics_port(no_metrics_env: None) -> None:
    prefixes = {"ingestion": "LLMOPS_INGESTION_", "embedding": "LLMOPS_EMBEDDING_",
                "vector-store": "LLMOPS_VECTORSTORE_", "safety": "LLMOPS_SAFETY_",
                "model-registry": "LLMOPS_REGISTRY_", "inference": "LLMOPS_INFERENCE_"}
    assert {s: ports.metrics_port(p) for s, p in prefixes.items()} == {
        s: 9460 + ports.service_port(s) % 10 for s in prefixes}
    assert ports.metrics_port("LLMOPS_OBSERVABILITY_") == 9467


def test_metrics_port_setting(no_metrics_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SafetyLike()
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", 9464)
    assert ServiceSettings().metrics_port == 0  # no LLMOPS_METRICS_PORT in ports.env: none
    assert SafetyLike(metrics_port=9).metrics_port == 9
    monkeypatch.setenv("LLMOPS_SAFETY_METRICS_PORT", "19464")
    monkeypatch.setenv("LLMOPS_SAFETY_METRICS_HOST", "0.0.0.0")
    assert (SafetyLike().metrics_host, SafetyLike().metrics_port) == ("0.0.0.0", 19464)
    monkeypatch.delenv("LLMOPS_SAFETY_METRICS_HOST")
    monkeypatch.setenv("LLMOPS_SAFETY_GRPC_HOST", "0.0.0.0")  # as in the service's image
    assert SafetyLike().metrics_host == "0.0.0.0"
    monkeypatch.setenv("LLMOPS_SAFETY_METRICS_PORT", "0")
    assert SafetyLike().metrics_port == 0
    monkeypatch.setenv("LLMOPS_SAFETY_METRICS_PORT", "70000")
    with pytest.raises(ValueError, match="metrics_port"):
        SafetyLike()


@pytest.mark.parametrize(("env", "endpoint"), [
    ({}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, "http://c:4317"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4317"}, "http://t:4317"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "true"}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_TRACES_EXPORTER": "none"}, None),
])
def test_tracing_is_on_only_with_an_endpoint(monkeypatch: pytest.MonkeyPatch,
                                             env: dict[str, str], endpoint: str | None) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = ServiceSettings().tracing
    assert (settings.enabled, settings.endpoint if settings.enabled else None) == \
        (endpoint is not None, endpoint)
    if endpoint is None:
        assert tracing.configure(settings, "svc") is None
        assert not tracing.active()  # nothing installed: the no-op tracer


# -- trace context --------------------------------------------------------------------------

def test_remote_context_prefers_traceparent_then_the_platform_trace_id() -> None:
    both = tracing.remote_context({"traceparent": TRACEPARENT, "x-trace-id": "f" * 32})
    assert both is not None and (format(both.trace_id, "032x"), both.span_id) == \
        (TRACE, 0x00F067AA0BA902B7)
    platform = tracing.remote_context({"x-trace-id": "ab" * 16})
    assert platform is not None and format(platform.trace_id, "032x") == "ab" * 16
    assert platform.trace_flags.sampled and platform.is_remote
    for junk in ("t-42", "0" * 32, "g" * 32, ""):
        assert tracing.remote_context({"x-trace-id": junk}) is None


def test_caller_metadata_carries_traceparent_only_inside_a_span(
        spans: InMemorySpanExporter) -> None:
    assert [k for k, _ in caller_metadata("key")] == ["x-trace-id", "x-api-key"]
    with tracing.tracer().start_as_current_span("op") as span:
        md = dict(caller_metadata("key"))
        ctx = span.get_span_context()
    assert md["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    assert tracing.current_trace_id() is None  # outside the span again


def test_batch_span_continues_one_trace_and_links_several(
        spans: InMemorySpanExporter) -> None:
    one = tracing.remote_context({"traceparent": TRACEPARENT})
    other = tracing.remote_context({"x-trace-id": "cd" * 16})
    with tracing.consume_span("topic.v1", "g", [one, one]):
        pass
    with tracing.consume_span("topic.v1", "g", [one, other, None]):
        pass
    with tracing.consume_span("topic.v1", "g", [None]):
        pass
    continued, linked, root = spans.get_finished_spans()
    assert continued.name == "process topic.v1" and continued.kind is SpanKind.CONSUMER
    assert continued.parent is not None and format(continued.context.trace_id, "032x") == TRACE
    assert continued.attributes == {
        "messaging.system": "kafka", "messaging.operation.type": "process",
        "messaging.destination.name": "topic.v1", "messaging.consumer.group.name": "g"}
    assert linked.parent is None and \
        sorted(format(link.context.trace_id, "032x") for link in linked.links) == \
        sorted([TRACE, "cd" * 16])
    assert root.parent is None and not root.links


def test_producers_are_parsed_once_per_distinct_header() -> None:
    def rec(*headers: tuple[str, bytes]) -> Any:
        return ConsumerRecord("t", 0, 0, 0, 0, b"k", b"v", None, 1, 1, list(headers))

    same = [rec(("traceparent", TRACEPARENT.encode()), ("x-trace-id", TRACE.encode()))] * 50
    [one] = tracing.producers(same)
    assert (format(one.trace_id, "032x"), one.span_id) == (TRACE, 0x00F067AA0BA902B7)
    # Only the platform id: one context per id, however many records carry it.
    only_id = [rec(("x-trace-id", b"ab" * 16))] * 3 + [rec(("x-trace-id", b"cd" * 16))]
    assert sorted(format(c.trace_id, "032x") for c in tracing.producers(only_id)) == \
        ["ab" * 16, "cd" * 16]
    assert tracing.producers([rec(), rec(("x-trace-id", b"t-42"))]) == []
    many = [rec(("x-trace-id", f"{i + 1:032x}".encode())) for i in range(100)]
    assert len(tracing.producers(many)) == tracing.MAX_LINKS + 1


# -- gRPC labels ----------------------------------------------------------------------------

@dataclass
class FakeContext:
    status: Any = None

    def code(self) -> Any:
        return self.status


def test_rpc_labels() -> None:
    assert split_method("/llmops.safety.v1.SafetyService/Check") == \
        ("llmops.safety.v1.SafetyService", "Check")
    assert split_method("") == ("unknown", "unknown")
    ctx: Any = FakeContext()
    assert status_of(ctx, None) is grpc.StatusCode.OK
    assert status_of(ctx, RuntimeError("boom")) is grpc.StatusCode.UNKNOWN
    assert status_of(ctx, asyncio.CancelledError()) is grpc.StatusCode.CANCELLED
    assert status_of(FakeContext(grpc.StatusCode.NOT_FOUND), Exception()) is \
        grpc.StatusCode.NOT_FOUND  # type: ignore[arg-type]
    assert status_of(FakeContext(3), None) is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[arg-type]


# -- consumed records -----------------------------------------------------------------------

TOPIC = events.DOCUMENT_DELETED.topic


class FakeBus:
    def __init__(self) -> None:
        self.settings = KafkaSettings(max_record_bytes=64 * 1024)
        self.stopping = False

    async def report(self, group: str, *, healthy: bool) -> None:
        pass

    async def dependencies_healthy(self) -> bool:
        return True


def _record(offset: int, headers: list[tuple[str, bytes]]) -> ConsumerRecord[Any, Any]:
    value = events_pb2.DocumentDeleted(envelope=events.make_envelope("t", tenant="acme"),
                                       document_id=f"d{offset}").SerializeToString()
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, b"k", value, None, 1, len(value), headers)


async def test_delivery_counts_acknowledged_records_and_rewound_batches(
        spans: InMemorySpanExporter) -> None:
    metrics = KitMetrics(CollectorRegistry())
    bus: Any = FakeBus()
    seen: list[str | None] = []

    async def handler(batch: Batch[events_pb2.DocumentDeleted]) -> None:
        seen.append(tracing.current_trace_id())

    delivery = Delivery(bus, events.DOCUMENT_DELETED, "g", handler, 1.0, metrics)
    traced = [("traceparent", TRACEPARENT.encode())]
    assert await delivery.run((_record(0, traced), _record(1, traced), _record(2, traced)))
    assert seen == [TRACE]  # the handler ran inside the continued trace
    assert sample(metrics, "llmops_consumer_records_processed_total",
                  topic=TOPIC, group="g") == 3
    assert sample(metrics, "llmops_consumer_batch_duration_seconds_count",
                  topic=TOPIC, group="g") == 1

    async def failing(batch: Batch[events_pb2.DocumentDeleted]) -> None:
        bus.stopping = True  # give up at once: the batch is rewound
        raise RuntimeError("down")

    delivery = Delivery(bus, events.DOCUMENT_DELETED, "g", failing, 1.0, metrics)
    assert not await delivery.run((_record(3, []),))
    assert sample(metrics, "llmops_consumer_batches_rewound_total",
                  topic=TOPIC, group="g") == 1
    assert sample(metrics, "llmops_consumer_records_processed_total",
                  topic=TOPIC, group="g") == 3
    ok, rewound = spans.get_finished_spans()
    assert (ok.attributes or {})["messaging.batch.message_count"] == 3
    assert ((ok.attributes or {})["llmops.outcome"], (rewound.attributes or {})["llmops.outcome"]) \
        == ("ack", "rewind")


class FakeConsumer:
    def __init__(self, ends: dict[TopicPartition, int], positions: dict[TopicPartition, int]):
        self.ends = ends
        self.positions = positions

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in partitions}

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


async def test_consumer_lag_is_high_water_minus_position_for_assigned_partitions() -> None:
    metrics = KitMetrics(CollectorRegistry())
    p0, p1 = TopicPartition("t", 0), TopicPartition("t", 1)
    consumer: FakeConsumer | None = None
    lag = ConsumerLag(metrics)
    lag.add(lambda: consumer, "g")
    assert await lag.refresh() == {}  # not started yet
    consumer = FakeConsumer({p0: 10, p1: 5}, {p0: 4, p1: 5})
    assert await lag.refresh() == {("t", "0", "g"): 6, ("t", "1", "g"): 0}
    assert sample(metrics, "llmops_consumer_lag", topic="t", partition="0", group="g") == 6
    consumer.positions = {p0: 10}  # p1 went to another replica
    assert await lag.refresh() == {("t", "0", "g"): 0}
    assert sample(metrics, "llmops_consumer_lag", topic="t", partition="1", group="g") is None
    lag.clear()
    assert sample(metrics, "llmops_consumer_lag", topic="t", partition="0", group="g") is None
