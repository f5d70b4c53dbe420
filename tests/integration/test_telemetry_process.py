"""Metrics and traces of a real service process (`python -m llmops_registry`).

Its /metrics endpoint is scraped over HTTP around real RPCs (the counts go up by exactly the
calls made, under their status codes); its traces go to an OTLP gRPC receiver started here
(opentelemetry-proto's TraceService on a loopback port). This test is the caller: its own
span goes out through the kit's call_peer, the registry's server spans continue that trace,
and the TenantDeleted event the registry publishes on the call carries it on to consumers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client.parser import text_string_to_metric_families

from llmops.admin.v1 import admin_pb2, admin_pb2_grpc
from llmops.registry.v1 import registry_pb2 as pb
from llmops.registry.v1 import registry_pb2_grpc
from llmops_kit import events, tracing
from llmops_kit.errors import NotFound
from llmops_kit.grpc_client import call_peer
from llmops_kit.settings import DEV_ADMIN_KEY, KafkaSettings
from llmops_kit.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SERVICE = "llmops.registry.v1.ModelRegistryService"
ACME = "dev-key-acme"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver: keeps every span it is sent, with its resource's service.name."""

    spans: list[tuple[str, Any]] = field(default_factory=list)

    def Export(self, request: Any, context: Any) -> Any:
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope in resource_spans.scope_spans:
                self.spans.extend((service, span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def find(self, service: str, name: str, trace_id: bytes) -> list[Any]:
        return [s for svc, s in self.spans
                if svc == service and s.name == name and s.trace_id == trace_id]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    # Threads of its own: this test's exporter sends synchronously from the event loop.
    servicer = Receiver()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"http://127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture
def client_tracing(receiver: tuple[Receiver, str],
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This test process traces its calls (the kit's spans) to the same receiver."""
    provider = TracerProvider(resource=Resource.create({"service.name": "telemetry-test"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver[1])))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "active", lambda: True)
    yield
    provider.shutdown()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def rpc_count(samples: dict[Any, float], method: str, code: str) -> float:
    labels = (("code", code), ("method", method), ("service", SERVICE))
    return samples.get(("llmops_rpc_requests_total", labels), 0.0)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def wait_serving(address: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 120
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            assert proc.returncode is None, tail(log)
            try:
                status = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if status.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            assert time.monotonic() < deadline, "registry did not become healthy"
            await asyncio.sleep(0.2)


async def end_offsets(kafka: KafkaSettings, topic: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    assert parts, f"{topic} does not exist"
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(parts))
    finally:
        await consumer.stop()


async def records_since(kafka: KafkaSettings, start: dict[TopicPartition, int],
                        tenant: str) -> list[Any]:
    """The TenantDeleted records of `tenant` published after `start`."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    found: list[Any] = []
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(r for r in records
                             if dict(r.headers).get(events.HEADER_TENANT) == tenant.encode())
        return found
    finally:
        await consumer.stop()


async def test_registry_process_exports_metrics_and_traces(
        kafka: KafkaSettings, tmp_path: Path, receiver: tuple[Receiver, str],
        client_tracing: None) -> None:
    collector, endpoint = receiver
    grpc_port, metrics_port = free_port(), free_port()
    unique = uuid.uuid4().hex[:10]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({
        "LLMOPS_REGISTRY_GRPC_PORT": str(grpc_port),
        "LLMOPS_REGISTRY_METRICS_PORT": str(metrics_port),
        "LLMOPS_REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path}/registry.db",
        "LLMOPS_AUTH_DATABASE_URL": f"sqlite:///{tmp_path}/platform.db",
        "LLMOPS_REGISTRY_SEED_MODEL__NAME": f"telemetry-{unique}",
        "LLMOPS_REGISTRY_SEED_RAG_PROMPT": "false",
        "LLMOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LLMOPS_DEV_MODE": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    })
    log = tmp_path / "registry.log"
    address = f"127.0.0.1:{grpc_port}"
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "llmops_registry",
                                                    env=env, stdout=out, stderr=out)
    try:
        await wait_serving(address, proc, log)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = registry_pb2_grpc.ModelRegistryServiceStub(channel)
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            before = await asyncio.to_thread(scrape, metrics_port)

            # Metrics: 3 OK, 1 NOT_FOUND, 1 UNAUTHENTICATED.
            acme = (("x-api-key", ACME),)
            for _ in range(3):
                await stub.ListModelVersions(pb.ListModelVersionsRequest(
                    name=f"telemetry-{unique}"), metadata=acme)
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.GetModelVersion(pb.GetModelVersionRequest(
                    name=f"none-{unique}", alias="production"), metadata=acme)
            with pytest.raises(grpc.aio.AioRpcError) as anonymous:
                await stub.ListModels(pb.ListModelsRequest())
            codes = (missing.value.code(), anonymous.value.code())
            assert codes == (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED)
            after = await asyncio.to_thread(scrape, metrics_port)
            assert rpc_count(after, "ListModelVersions", "OK") - \
                rpc_count(before, "ListModelVersions", "OK") == 3
            assert rpc_count(after, "GetModelVersion", "NOT_FOUND") - \
                rpc_count(before, "GetModelVersion", "NOT_FOUND") == 1
            assert rpc_count(after, "ListModels", "UNAUTHENTICATED") - \
                rpc_count(before, "ListModels", "UNAUTHENTICATED") == 1
            histogram = ("llmops_rpc_duration_seconds_count",
                         (("method", "ListModelVersions"), ("service", SERVICE)))
            assert after[histogram] - before.get(histogram, 0.0) == 3
            assert after[("process_resident_memory_bytes", ())] > 0

            # Traces: this test's span -> call_peer -> the registry's server span, and on to
            # the event the registry publishes while serving DeleteTenant.
            tenant = f"gone-{unique}"
            offsets = await end_offsets(kafka, events.TENANT_DELETED.topic)
            with tracing.tracer().start_as_current_span("telemetry-test") as root:
                await call_peer(stub.ListModelVersions, pb.ListModelVersionsRequest(
                    name=f"telemetry-{unique}"), peer="registry", timeout=10,
                    unavailable="REGISTRY_UNAVAILABLE", api_key=ACME)
                with pytest.raises(NotFound):
                    await call_peer(stub.GetModelVersion, pb.GetModelVersionRequest(
                        name=f"none-{unique}", alias="production"), peer="registry",
                        timeout=10, unavailable="REGISTRY_UNAVAILABLE", api_key=ACME)
                await call_peer(admin.DeleteTenant, admin_pb2.DeleteTenantRequest(
                    tenant_id=tenant), peer="registry", timeout=10,
                    unavailable="REGISTRY_UNAVAILABLE", api_key=DEV_ADMIN_KEY)
            trace_id = root.get_span_context().trace_id
            trace_bytes = trace_id.to_bytes(16, "big")
            list_name = f"{SERVICE}/ListModelVersions"
            get_name = f"{SERVICE}/GetModelVersion"
            delete_name = "llmops.admin.v1.AdminService/DeleteTenant"

            async def exported() -> bool:
                return all(collector.find("model-registry", name, trace_bytes)
                           for name in (list_name, get_name, delete_name))
            await eventually(exported, timeout=30)
            [server] = collector.find("model-registry", list_name, trace_bytes)
            [client] = collector.find("telemetry-test", list_name, trace_bytes)
            assert server.kind == server.SPAN_KIND_SERVER and client.kind == client.SPAN_KIND_CLIENT
            assert server.parent_span_id == client.span_id  # W3C traceparent in the metadata
            attributes = {a.key: a.value for a in server.attributes}
            assert (attributes["rpc.service"].string_value, attributes["rpc.method"].string_value,
                    attributes["rpc.grpc.status_code"].int_value) == \
                (SERVICE, "ListModelVersions", 0)
            [refused] = collector.find("model-registry", get_name, trace_bytes)
            refused_attributes = {a.key: a.value for a in refused.attributes}
            assert refused_attributes["rpc.grpc.status_code"].int_value == 5  # NOT_FOUND
            # Ids and codes only: no key, tenant or model name in any exported attribute.
            for _, span in collector.spans:
                text = repr([(a.key, a.value) for a in span.attributes])
                assert ACME not in text and DEV_ADMIN_KEY not in text and unique not in text

            # Downstream: the event published on the call carries the same trace.
            [record] = await records_since(kafka, offsets, tenant)
            headers = {k: v.decode() for k, v in record.headers}
            assert headers["traceparent"].split("-")[1] == format(trace_id, "032x")
            assert headers[events.HEADER_TRACE_ID] == format(trace_id, "032x")
            event = events.decode(events.TENANT_DELETED, record.value)
            assert event.envelope.trace_id == format(trace_id, "032x")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
    assert code == 0, tail(log)
