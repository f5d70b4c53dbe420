"""The real offline toxicity model (loaded once), a real gRPC server on a socket, and a real
Kafka bus publishing verdicts to a topic unique to this run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from llmops.safety.v1 import safety_pb2, safety_pb2_grpc
from llmops_kit import events
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_safety.adapters.profanity_check import ProfanityCheckModel
from llmops_safety.api.events import BackgroundPublisher
from llmops_safety.bootstrap import build_grpc, build_service
from llmops_safety.domain.engine import SafetyEngine
from llmops_safety.settings import Settings

POLICIES = {"tenants": {"acme": {"input": {"block": ["pii.kr_rrn"], "injection_block": 0.5}}}}


@pytest.fixture(scope="session")
def profanity_model() -> ProfanityCheckModel:
    return ProfanityCheckModel.load()


@dataclass
class Running:
    server: GrpcServer
    publisher: BackgroundPublisher
    topic: str


@pytest.fixture(scope="session")
async def safety_server(profanity_model, kafka: KafkaSettings) -> AsyncIterator[Running]:
    run = uuid.uuid4().hex[:10]
    event_type = events.EventType(f"llmops.test-{run}.safety-verdict-issued.v1",
                                  safety_pb2.SafetyVerdictIssued)
    await ensure_topics(kafka, [event_type.topic], partitions=1)
    settings = Settings(grpc_host="127.0.0.1", grpc_port=0, policies=POLICIES, kafka=kafka)
    bus = EventBus(kafka, client_id=f"test-safety-{run}")
    publisher = BackgroundPublisher(bus, event_type, timeout=10.0)
    server = build_grpc(settings, build_service(settings, SafetyEngine(profanity_model), publisher),
                        publisher)
    await bus.start()
    await server.start()
    try:
        yield Running(server, publisher, event_type.topic)
    finally:
        await server.stop(0)
        await publisher.drain()
        await bus.stop()


@pytest.fixture
async def safety_stub(safety_server: Running) -> AsyncIterator[safety_pb2_grpc.SafetyServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{safety_server.server.port}") as channel:
        yield safety_pb2_grpc.SafetyServiceStub(channel)
