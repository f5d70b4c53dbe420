"""What the kit's telemetry costs: per RPC and per consumed batch, with tracing off and on.

RPCs: unary calls to an in-process GrpcServer on loopback, timed alternately in rounds with
the telemetry interceptor (metrics, and a span: no-op tracer, or a real TracerProvider whose
spans are dropped by a processor that does nothing) and without it (the bare TenantAuth
server as before telemetry). Batches: Delivery.run over 500 decoded records with a handler
that does nothing, with and without telemetry. Prints microseconds per call and the ratios.

    uv run python bench/telemetry_overhead.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import grpc
from aiokafka import ConsumerRecord
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops.ingestion.v1 import events_pb2
from llmops_kit import events, tracing
from llmops_kit.auth import Principal, Role
from llmops_kit.delivery import Batch, Delivery
from llmops_kit.grpc_server import GrpcServer, TenantAuth
from llmops_kit.key_resolver import KeyResolver
from llmops_kit.settings import KafkaSettings

SERVICE = "llmops.embedding.v1.EmbeddingService"
MD = (("x-api-key", "k"),)


class Servicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    async def Embed(self, request: Any, context: Any) -> Any:
        return embedding_pb2.EmbedResponse(model="m")


class Drop(SpanProcessor):
    """Records spans (attributes, timing) and drops them: the SDK's cost without export."""

    def on_end(self, span: ReadableSpan) -> None:
        pass


async def server(telemetry: bool) -> tuple[GrpcServer, int]:
    srv = GrpcServer("127.0.0.1", 0, KeyResolver(None, {"k": Principal("acme", Role.MEMBER)}))
    if not telemetry:  # the server as it was: the key check only
        srv.server = grpc.aio.server(interceptors=[TenantAuth(srv.auth, srv.roles)])
    srv.add(embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server, Servicer(), [SERVICE],
            {"Embed": Role.MEMBER, "GetModelInfo": Role.MEMBER})
    return srv, await srv.start()


async def rpc_seconds(port: int, calls: int) -> float:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        request = embedding_pb2.EmbedRequest(texts=["x"])
        for _ in range(50):
            await stub.Embed(request, metadata=MD)
        started = time.perf_counter()
        for _ in range(calls):
            await stub.Embed(request, metadata=MD)
        return (time.perf_counter() - started) / calls


class Bus:
    settings = KafkaSettings(max_record_bytes=64 * 1024)
    stopping = False

    async def report(self, group: str, *, healthy: bool) -> None:
        pass

    async def dependencies_healthy(self) -> bool:
        return True


async def batch_seconds(telemetry: bool, batches: int) -> float:
    records = tuple(ConsumerRecord(
        "t", 0, i, 0, 0, b"k", events_pb2.DocumentDeleted(
            envelope=events.make_envelope("b", tenant="acme"), document_id=f"d{i}"
        ).SerializeToString(), None, 1, 1, [("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16
                                                + b"-01")]) for i in range(500))

    async def handler(batch: Batch[Any]) -> None:
        pass

    bus: Any = Bus()
    delivery = Delivery(bus, events.DOCUMENT_DELETED, "g", handler, 10.0)
    run = delivery.run if telemetry else delivery._run
    started = time.perf_counter()
    for _ in range(batches):
        await run(records)
    return (time.perf_counter() - started) / batches


async def measure(args: argparse.Namespace, label: str) -> None:
    bare, with_telemetry, batch_bare, batch_telemetry = [], [], [], []
    servers = [await server(False), await server(True)]
    try:
        for _ in range(args.rounds):
            bare.append(await rpc_seconds(servers[0][1], args.calls))
            with_telemetry.append(await rpc_seconds(servers[1][1], args.calls))
            batch_bare.append(await batch_seconds(False, 20))
            batch_telemetry.append(await batch_seconds(True, 20))
    finally:
        for srv, _ in servers:
            await srv.stop(0)
    rpc0, rpc1 = statistics.median(bare), statistics.median(with_telemetry)
    b0, b1 = statistics.median(batch_bare), statistics.median(batch_telemetry)
    print(f"{label}: RPC {rpc0 * 1e6:.0f} us bare, {rpc1 * 1e6:.0f} us with telemetry "
          f"(ratio {rpc1 / rpc0:.3f}, +{(rpc1 - rpc0) * 1e6:.0f} us); batch of 500 "
          f"{b0 * 1e3:.2f} ms bare, {b1 * 1e3:.2f} ms with telemetry (ratio {b1 / b0:.3f})")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    await measure(args, "tracing off (no-op tracer)")
    provider = TracerProvider()
    provider.add_span_processor(Drop())
    tracing.tracer = lambda: provider.get_tracer("bench")  # type: ignore[assignment]
    tracing.active = lambda: True  # type: ignore[assignment]
    await measure(args, "tracing on (spans recorded, not exported)")


if __name__ == "__main__":
    asyncio.run(main())
