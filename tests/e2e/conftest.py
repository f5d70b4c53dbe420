"""Fixtures of the end-to-end tier: Kafka and Weaviate from the infra scripts, the three
services as separate processes, driven over gRPC and by an external Kafka producer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from e2e_support import TENANTS, Stack, Stubs
from llmops.ingestion.v1 import ingestion_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2_grpc
from llmops_cli import stack
from llmops_kit.settings import KafkaSettings


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
        "LLMOPS_API_KEYS": ",".join(f"{k}={t}" for t, k in keys.items()),
        "LLMOPS_INGESTION_DATABASE_URL": f"sqlite:///{data}/ingestion.db",
        "LLMOPS_LOG_LEVEL": os.environ.get("LLMOPS_LOG_LEVEL", "INFO"),
    }
    s = Stack(env, keys)
    for name in ("embedding", "vector-store", "ingestion"):
        s.start(name)
    asyncio.run(_wait_all(s))
    yield s
    s.stop_all()


async def _wait_all(s: Stack) -> None:
    for name in ("embedding", "vector-store", "ingestion"):
        await s.wait(name)


@pytest.fixture
async def stubs(e2e_stack: Stack) -> AsyncIterator[Stubs]:
    ing = grpc.aio.insecure_channel("127.0.0.1:50061")
    vs = grpc.aio.insecure_channel("127.0.0.1:50063")
    yield Stubs(ingestion_pb2_grpc.IngestionServiceStub(ing),
                vectorstore_pb2_grpc.VectorStoreServiceStub(vs))
    await ing.close()
    await vs.close()


