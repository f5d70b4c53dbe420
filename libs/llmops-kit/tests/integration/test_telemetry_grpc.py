"""RPC metrics and spans of GrpcServer and call_peer over a real socket."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops_kit import runner, tracing
from llmops_kit.auth import Principal, Role
from llmops_kit.context import current_trace_id
from llmops_kit.errors import InvalidArgument
from llmops_kit.grpc_client import call_peer
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.key_resolver import KeyResolver
from llmops_kit.metrics import KitMetrics, kit_metrics, serve_metrics
from llmops_kit.settings import ServiceSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
SERVICE = "llmops.embedding.v1.EmbeddingService"
SECRET = "a secret question about alice@example.com"


class Servicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    """Embed: refuses 'bad', crashes on 'crash', else answers with the bound trace id."""

    async def Embed(self, request: embedding_pb2.EmbedRequest, context: object
                    ) -> embedding_pb2.EmbedResponse:
        if list(request.texts) == ["bad"]:
            raise InvalidArgument("BAD_TEXT", "the text 'bad' is refused")
        if list(request.texts) == ["crash"]:
            raise RuntimeError("a bug")
        return embedding_pb2.EmbedResponse(model=current_trace_id() or "")

    async def GetModelInfo(self, request: embedding_pb2.GetModelInfoRequest, context: object
                           ) -> embedding_pb2.GetModelInfoResponse:
        return embedding_pb2.GetModelInfoResponse(model="m")


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "it"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "active", lambda: True)
    yield exporter
    provider.shutdown()


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    keys = {"k-acme": Principal("acme", Role.MAINTAINER, "acme-m"),
            "k-member": Principal("acme", Role.MEMBER, "acme-member")}
    server = GrpcServer("127.0.0.1", 0, KeyResolver(None, keys))
    server.add(embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server, Servicer(),
               [SERVICE], {"Embed": Role.MEMBER, "GetModelInfo": Role.MAINTAINER})
    port = await server.start()
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield ch
    await ch.close()
    await server.stop(0)


def counts() -> dict[tuple[str, str], float]:
    """llmops_rpc_requests_total of the test service by (method, code)."""
    out: dict[tuple[str, str], float] = {}
    for family in kit_metrics().registry.collect():
        for s in family.samples:
            if s.name == "llmops_rpc_requests_total" and s.labels["service"] == SERVICE:
                out[(s.labels["method"], s.labels["code"])] = s.value
    return out


def latency_count(method: str) -> float:
    return kit_metrics().registry.get_sample_value(
        "llmops_rpc_duration_seconds_count", {"service": SERVICE, "method": method}) or 0.0


async def test_every_outcome_is_counted_under_its_status_code(
        channel: grpc.aio.Channel) -> None:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    before, embed_before = counts(), latency_count("Embed")
    acme, member = (("x-api-key", "k-acme"),), (("x-api-key", "k-member"),)
    for _ in range(3):
        await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]), metadata=acme)
    outcomes = [(stub.Embed, ["bad"], acme), (stub.Embed, ["crash"], acme),
                (stub.Embed, ["x"], ()), (stub.GetModelInfo, None, member)]
    for rpc, texts, md in outcomes:
        request = embedding_pb2.EmbedRequest(texts=texts) if texts is not None \
            else embedding_pb2.GetModelInfoRequest()
        with pytest.raises(grpc.aio.AioRpcError):
            await rpc(request, metadata=md)
    health = health_pb2_grpc.HealthStub(channel)
    await health.Check(health_pb2.HealthCheckRequest())  # probes are not measured
    after = counts()
    delta = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    assert delta == {("Embed", "OK"): 3, ("Embed", "INVALID_ARGUMENT"): 1,
                     ("Embed", "UNKNOWN"): 1, ("Embed", "UNAUTHENTICATED"): 1,
                     ("GetModelInfo", "PERMISSION_DENIED"): 1}
    assert latency_count("Embed") - embed_before == 6


async def test_spans_continue_the_callers_trace_through_call_peer(
        channel: grpc.aio.Channel, spans: InMemorySpanExporter) -> None:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    with tracing.tracer().start_as_current_span("caller") as caller:
        response = await call_peer(stub.Embed, embedding_pb2.EmbedRequest(texts=[SECRET]),
                                   peer="embedding", timeout=5, unavailable="X",
                                   api_key="k-acme")
        with pytest.raises(InvalidArgument):
            await call_peer(stub.Embed, embedding_pb2.EmbedRequest(texts=["bad"]),
                            peer="embedding", timeout=5, unavailable="X", api_key="k-acme")
    trace_id = format(caller.get_span_context().trace_id, "032x")
    # The server bound the span's trace id as the platform trace id (logs agree with traces).
    assert response.model == trace_id
    finished = {(s.name, s.kind): s for s in spans.get_finished_spans()
                if s.name != "caller"}
    name = f"{SERVICE}/Embed"
    assert len(spans.get_finished_spans()) == 5  # caller + 2 client + 2 server
    server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    client = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert {s.name for s in server + client} == {name} and (name, SpanKind.SERVER) in finished
    for srv, cli in zip(server, client, strict=True):
        assert srv.context.trace_id == cli.context.trace_id == caller.get_span_context().trace_id
        assert srv.parent is not None and srv.parent.span_id == cli.context.span_id
    ok, refused = server
    assert dict(ok.attributes or {}) == {"rpc.system": "grpc", "rpc.service": SERVICE,
                                         "rpc.method": "Embed", "rpc.grpc.status_code": 0}
    assert (refused.attributes or {})["rpc.grpc.status_code"] == 3
    assert (refused.attributes or {})["llmops.error.reason"] == "BAD_TEXT"
    assert (client[1].attributes or {})["llmops.error.reason"] == "BAD_TEXT"
    # Names, ids and codes only: nothing of the request reaches a span.
    for span in spans.get_finished_spans():
        assert SECRET not in repr(dict(span.attributes or {}))
        assert "alice" not in span.name


def test_metrics_endpoint_serves_the_registry_and_a_taken_port_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    KitMetrics(registry).rpc_requests.labels(SERVICE, "Embed", "OK").inc(2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    stop = serve_metrics("127.0.0.1", port, registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert f'llmops_rpc_requests_total{{code="OK",method="Embed",service="{SERVICE}"}} 2.0' \
            in text.splitlines()
        # The port is taken (by the endpoint above): the service runs on without /metrics
        # and says why in its log.
        runner._start_metrics(ServiceSettings(service_name="svc", metrics_port=port))()
        assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
            f"cannot serve metrics on 127.0.0.1:{port} (Address already in use); serving "
            "without /metrics (set metrics_port, 0 disables)"]
    finally:
        stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
    # Port 0: no endpoint, nothing to stop.
    runner._start_metrics(ServiceSettings(metrics_port=0))()


class Streamer(inference_pb2_grpc.InferenceServiceServicer):
    """GenerateStream: two tokens, or INVALID_ARGUMENT after the first for 'bad'."""

    async def GenerateStream(self, request: inference_pb2.GenerateRequest, context: object
                             ) -> AsyncIterator[inference_pb2.GenerateStreamResponse]:
        yield inference_pb2.GenerateStreamResponse(token="a")
        if request.question == "bad":
            raise InvalidArgument("BAD_QUESTION", "refused mid-stream")
        yield inference_pb2.GenerateStreamResponse(token="b")


async def test_streams_are_counted_when_they_end_and_traced(
        spans: InMemorySpanExporter) -> None:
    service = "llmops.inference.v1.InferenceService"
    server = GrpcServer("127.0.0.1", 0, KeyResolver(None, {"k": Principal("acme", Role.MEMBER)}))
    server.add(inference_pb2_grpc.add_InferenceServiceServicer_to_server, Streamer(), [service],
               dict.fromkeys(("Generate", "GenerateStream", "SubmitFeedback"), Role.MEMBER))
    port = await server.start()
    registry = kit_metrics().registry

    def count(code: str) -> float:
        return registry.get_sample_value("llmops_rpc_requests_total", {
            "service": service, "method": "GenerateStream", "code": code}) or 0.0

    ok, bad = count("OK"), count("INVALID_ARGUMENT")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            md = (("x-api-key", "k"),)
            tokens = [r.token async for r in stub.GenerateStream(
                inference_pb2.GenerateRequest(question="q"), metadata=md)]
            assert tokens == ["a", "b"]
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.GenerateStream(inference_pb2.GenerateRequest(question="bad"),
                                                   metadata=md):
                    pass
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.stop(0)
    assert (count("OK") - ok, count("INVALID_ARGUMENT") - bad) == (1, 1)
    codes = [(s.name, (s.attributes or {})["rpc.grpc.status_code"])
             for s in spans.get_finished_spans()]
    assert codes == [(f"{service}/GenerateStream", 0), (f"{service}/GenerateStream", 3)]
