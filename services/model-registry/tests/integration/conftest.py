"""A running registry for integration tests: real gRPC socket, real Kafka, SQLite or Postgres.

Each test module gets its own database per backend and its own unique topics, so concurrent
test sessions and the platform's real `llmops.registry.*` topics never mix.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from llmops.registry.v1 import evaluation_pb2, registry_pb2, registry_pb2_grpc
from llmops_kit.events import EventType
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_registry.api.events import RegistryTopics
from llmops_registry.bootstrap import Registry, build_grpc, build_registry
from llmops_registry.settings import Settings

# Keys of the registry under test: `tenant:role`. Maintainers of acme and globex, a member of
# acme and a platform admin (the roles' checks are the registry's own, see api/grpc.py).
TEST_KEYS = ("dev-key-acme=acme:maintainer,dev-key-globex=globex:maintainer,"
             "dev-key-acme-member=acme:member,dev-key-admin=platform:admin")


def unique_topics() -> RegistryTopics:
    run = uuid.uuid4().hex[:10]
    base = f"llmops.test-{run}.registry"
    return RegistryTopics(
        EventType(f"{base}.model-version-created.v1", registry_pb2.ModelVersionCreated),
        EventType(f"{base}.alias-changed.v1", registry_pb2.ModelAliasChanged),
        EventType(f"{base}.prompt-version-created.v1", registry_pb2.PromptVersionCreated),
        EventType(f"{base}.prompt-label-changed.v1", registry_pb2.PromptLabelChanged),
        EventType(f"{base}.evaluation-completed.v1", evaluation_pb2.EvaluationCompleted),
    )


@dataclass
class Running:
    """One registry process-equivalent: store, relay, bus and a gRPC server on a free port."""

    registry: Registry
    server: GrpcServer
    bus: EventBus
    channel: grpc.aio.Channel
    stub: registry_pb2_grpc.ModelRegistryServiceStub
    topics: RegistryTopics

    async def stop(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.registry.relay.stop()
        await self.bus.stop()
        self.registry.engine.dispose()


async def start_registry(database_url: str, kafka: KafkaSettings, topics: RegistryTopics,
                         *, bus_up: bool = True, **overrides: Any) -> Running:
    """Like bootstrap.build + start, with test topics; bus_up=False: a broker that is down."""
    overrides.setdefault("api_keys", TEST_KEYS)
    settings = Settings(grpc_host="127.0.0.1", grpc_port=0, database_url=database_url,
                        kafka=kafka, outbox_interval_seconds=0.5, **overrides)
    bus = EventBus(settings.kafka if bus_up else KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                   client_id="registry-test")
    if bus_up:
        await ensure_topics(kafka, topics.all(), partitions=1)
        await bus.start()
    registry = await build_registry(settings, bus, topics)
    server = build_grpc(settings, registry)
    port = await server.start()
    registry.relay.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return Running(registry, server, bus, channel,
                   registry_pb2_grpc.ModelRegistryServiceStub(channel), topics)


async def read_topic(kafka: KafkaSettings, topic: str, n: int, timeout: float = 30,
                     key: str | None = None) -> list[ConsumerRecord[Any, Any]]:
    """The first n records of a topic (with that key), fewer if the timeout passes first."""
    consumer = AIOKafkaConsumer(topic, **kafka.client_options(),
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    got: list[ConsumerRecord[Any, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < n and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                got.extend(r for r in records if key is None or r.key == key.encode())
        return got
    finally:
        await consumer.stop()


@pytest.fixture(scope="session")
def registry_kit() -> Any:
    """The helpers above, for test modules (conftest is not importable under importlib mode)."""

    class Kit:
        start = staticmethod(start_registry)
        read = staticmethod(read_topic)
        topics = staticmethod(unique_topics)

    return Kit


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_database_url(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database for the whole module (a schema of the session's database on Postgres)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('registry')}/registry.db"
    make_schema: Callable[[], str] = request.getfixturevalue("postgres_schema")
    return make_schema()


@pytest.fixture(scope="module")
async def running(module_database_url: str, kafka: KafkaSettings) -> AsyncIterator[Running]:
    reg = await start_registry(module_database_url, kafka, unique_topics())
    try:
        yield reg
    finally:
        await reg.stop()
