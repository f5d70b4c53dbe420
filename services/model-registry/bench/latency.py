"""Round-trip latency of the registry's main RPCs over a real socket (Kafka publish included).

    uv run python services/model-registry/bench/latency.py [DATABASE_URL]

Default: a temporary SQLite file. Needs Kafka (bash infra/scripts/kafka.sh start); events go to
unique `llmops.bench-*` topics.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from llmops.registry.v1 import registry_pb2 as pb
from llmops.registry.v1 import registry_pb2_grpc
from llmops_kit.events import EventType
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_registry.api.events import RegistryTopics
from llmops_registry.bootstrap import build_grpc, build_registry
from llmops_registry.settings import Settings

KEY = (("x-api-key", "dev-key-acme"),)
N = 200


async def timed(label: str, call: Callable[[int], Awaitable[Any]]) -> None:
    samples = []
    for i in range(N):
        t0 = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    print(f"{label:<34} p50 {statistics.median(samples):6.2f} ms   "
          f"p95 {samples[int(N * 0.95)]:6.2f} ms")


async def main(url: str) -> None:
    run = uuid.uuid4().hex[:8]
    topics = RegistryTopics(*(EventType(f"llmops.bench-{run}.{name}.v1", msg) for name, msg in (
        ("model-version-created", pb.ModelVersionCreated),
        ("alias-changed", pb.ModelAliasChanged),
        ("prompt-version-created", pb.PromptVersionCreated),
        ("prompt-label-changed", pb.PromptLabelChanged))))
    settings = Settings(grpc_host="127.0.0.1", grpc_port=0, database_url=url)
    await ensure_topics(settings.kafka, topics.all(), partitions=1)
    bus = EventBus(settings.kafka, "registry-bench")
    await bus.start()
    registry = await build_registry(settings, bus, topics)
    server = build_grpc(settings, registry)
    port = await server.start()
    await registry.relay.drain()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = registry_pb2_grpc.ModelRegistryServiceStub(channel)
            name = f"bench-{run}"
            await timed("RegisterModelVersion (+1 event)", lambda i: stub.RegisterModelVersion(
                pb.RegisterModelVersionRequest(name=name, artifact_uri=f"file:///m/{i}",
                                               format="hf"), metadata=KEY))
            await timed("SetAlias (+1 event)", lambda i: stub.SetAlias(pb.SetAliasRequest(
                name=name, alias="production", version=i + 1), metadata=KEY))
            await timed("GetModelVersion by alias", lambda i: stub.GetModelVersion(
                pb.GetModelVersionRequest(name=name, alias="production"), metadata=KEY))
            docs = [pb.PromptDocument(id=f"doc-{j}#0", text="lorem ipsum " * 40, title=f"T{j}")
                    for j in range(5)]
            await timed("RenderPrompt rag-answer, 5 docs", lambda i: stub.RenderPrompt(
                pb.RenderPromptRequest(name="rag-answer", variables={"question": "why?"},
                                       documents=docs), metadata=KEY))
    finally:
        await server.stop(0)
        await registry.relay.stop()
        await bus.stop()
        registry.engine.dispose()


if __name__ == "__main__":
    default = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    target = sys.argv[1] if len(sys.argv) > 1 else default
    print(f"database: {target.split('://')[0]}")
    asyncio.run(main(target))
