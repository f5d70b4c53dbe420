"""Fixtures of the end-to-end tier: Kafka and Weaviate from the infra scripts, the three
services as separate processes, driven over gRPC and by an external Kafka producer.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from e2e_support import HYBRID_TENANT, RUN_ID, STRICT_TENANT, TENANTS, Stack, Stubs
from llmops.inference.v1 import inference_pb2_grpc
from llmops.ingestion.v1 import ingestion_pb2_grpc
from llmops.registry.v1 import registry_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2_grpc
from llmops_cli import stack
from llmops_kit import ports, topics
from llmops_kit.kafka import ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import start_group_at_end


@pytest.fixture(scope="session")
def e2e_stack(kafka: KafkaSettings, weaviate_server: dict, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Stack]:
    # A stack left running by `make demo` uses the same ports and consumer groups.
    for spec in stack.SERVICES:
        for replica in range(3):
            stack.stop_service(spec.name, replica)
    data: Path = tmp_path_factory.mktemp("e2e")
    keys = {t: f"key-{t}" for t in TENANTS}
    env = {
        # Development mode: the services accept these well-known keys (tenant maintainers).
        "LLMOPS_DEV_MODE": "true",
        "LLMOPS_API_KEYS": ",".join(f"{k}={t}" for t, k in keys.items()),
        "LLMOPS_AUTH_DATABASE_URL": f"sqlite:///{data}/platform.db",
        # The platform's bootstrap admin key (AdminService: tenants, keys, audit; the
        # generation server's admin routes, through which inference loads LoRA versions).
        "LLMOPS_ADMIN_KEY": f"e2e-admin-{uuid.uuid4().hex}",
        # Short, so the fault tests' outages outlast it and batches are rewound.
        "LLMOPS_KAFKA_RETRY_WINDOW_SECONDS": "10",
        # A publish to a stopped broker fails after this (default 30 s), not after a minute:
        # the Kafka outage test's wait for the first rewind follows it (docs/testing.md).
        "LLMOPS_KAFKA_REQUEST_TIMEOUT_MS": "10000",
        "LLMOPS_INGESTION_DATABASE_URL": f"sqlite:///{data}/ingestion.db",
        "LLMOPS_LOG_LEVEL": os.environ.get("LLMOPS_LOG_LEVEL", "INFO"),
        # A store and a consumer group of this run's own, from the end of every topic.
        "LLMOPS_OBSERVABILITY_CLICKHOUSE__DSN": f"chdb://{data}/observability",
        "LLMOPS_OBSERVABILITY_CONSUMER_GROUP": f"observability-e2e-{RUN_ID}",
    }
    asyncio.run(_observe_from_now(kafka, env["LLMOPS_OBSERVABILITY_CONSUMER_GROUP"]))
    s = Stack(env, keys)
    for name in CORE_SERVICES:
        s.start(name)
    asyncio.run(_wait_all(s))
    yield s
    s.stop_all()


async def _observe_from_now(kafka: KafkaSettings, group: str) -> None:
    """The run's observability group starts at the end of every topic (not the history)."""
    await ensure_topics(kafka, topics.ALL)
    await start_group_at_end(kafka, group, [n for t in topics.ALL
                                            for n in (t, topics.dead_letter(t))])


CORE_SERVICES = ("observability", "embedding", "vector-store", "ingestion")


async def _wait_all(s: Stack, names: tuple[str, ...] = CORE_SERVICES) -> None:
    for name in names:
        await s.wait(name)


# Output policy of the strict tenant: any PII in an answer blocks it (the default redacts).
STRICT_POLICIES = {"tenants": {STRICT_TENANT: {"output": {"block": ["pii.*"]}}}}
ANSWER_SERVICES = ("safety", "model-registry", "generation", "inference")


@pytest.fixture(scope="session")
def answer_stack(e2e_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The document path plus safety, model-registry, the generation server and inference."""
    data: Path = tmp_path_factory.mktemp("answer")
    e2e_stack.env.update({
        "LLMOPS_REGISTRY_DATABASE_URL": f"sqlite:///{data}/registry.db",
        "LLMOPS_SAFETY_POLICIES": json.dumps(STRICT_POLICIES),
        # Bit-identical greedy output whatever else is batched with it.
        "LLMOPS_GENERATION_DTYPE": "float32",
        "LLMOPS_INFERENCE_CACHE_TTL_SECONDS": "600",
        # These tests are about the model's path (adapters change the answer, the model echoes
        # PII): every answer is the model's, not the hybrid mode's extracted sentence.
        # HYBRID_TENANT's answers are hybrid (test_answer_path's hybrid stream).
        "LLMOPS_INFERENCE_ANSWER_POLICIES": json.dumps({
            "default": {"answer_mode": "generative"},
            "tenants": {HYBRID_TENANT: {"answer_mode": "hybrid"}}}),
        # The generation server loads models and adapters only from under its models root.
        "LLMOPS_GENERATION_MODELS_ROOT": str(data / "models"),
    })
    for name in ANSWER_SERVICES:
        e2e_stack.start(name)
    asyncio.run(_wait_all(e2e_stack, ANSWER_SERVICES))
    yield e2e_stack
    for name in ANSWER_SERVICES:
        stack.stop_service(name)
        e2e_stack.running.discard(f"{name}:0")


@pytest.fixture(scope="session")
async def inference(answer_stack: Stack) -> AsyncIterator[inference_pb2_grpc.InferenceServiceStub]:
    async with grpc.aio.insecure_channel(ports.service_address("inference")) as ch:
        yield inference_pb2_grpc.InferenceServiceStub(ch)


@pytest.fixture(scope="session")
async def registry(answer_stack: Stack) -> AsyncIterator[registry_pb2_grpc.ModelRegistryServiceStub]:
    async with grpc.aio.insecure_channel(ports.service_address("model-registry")) as ch:
        yield registry_pb2_grpc.ModelRegistryServiceStub(ch)


@pytest.fixture(scope="session")
async def stubs(e2e_stack: Stack) -> AsyncIterator[Stubs]:
    ing = grpc.aio.insecure_channel(ports.service_address("ingestion"))
    vs = grpc.aio.insecure_channel(ports.service_address("vector-store"))
    yield Stubs(ingestion_pb2_grpc.IngestionServiceStub(ing),
                vectorstore_pb2_grpc.VectorStoreServiceStub(vs))
    await ing.close()
    await vs.close()


