"""pytest plugin shared by every test tier (loaded from the root conftest.py).

Infrastructure fixtures start the real thing through the project's infra scripts and fail
(never skip) when it cannot be started.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from llmops_kit import ports
from llmops_kit.grpc_server import error_reason
from llmops_kit.settings import KafkaSettings, secret_file

__all__ = ["REPO", "error_reason", "infra_script", "read_topic"]

REPO = Path(__file__).resolve().parents[4]


def infra_script(name: str, action: str) -> None:
    script = REPO / "infra" / "scripts" / f"{name}.sh"
    proc = subprocess.run(["bash", str(script), action], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"{name} {action} failed (exit {proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", pytrace=False)


@pytest.fixture(scope="session")
def kafka() -> KafkaSettings:
    """A running Kafka broker (started by infra/scripts/kafka.sh if needed)."""
    infra_script("kafka", "start")
    return KafkaSettings()


@pytest.fixture(scope="session")
def weaviate_server() -> dict[str, Any]:
    """A running Weaviate server (started by infra/scripts/weaviate.sh if needed): where it
    listens and the file with its API key."""
    infra_script("weaviate", "start")
    return {
        "host": ports.local_host(),
        "http_port": ports.port("WEAVIATE_PORT"),
        "grpc_port": ports.port("WEAVIATE_GRPC_PORT"),
        # The file weaviate.sh uses: WEAVIATE_API_KEY_FILE, else the one under $LLMOPS_HOME.
        "api_key_file": Path(os.environ.get("WEAVIATE_API_KEY_FILE") or secret_file("weaviate.key")),
    }


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group and collection names."""
    return uuid.uuid4().hex[:10]




async def read_topic(kafka: KafkaSettings, topic: str, n: int, timeout: float = 60) -> list[Any]:
    """The records of `topic` from its start, once there are `n` of them or `timeout` passed."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    got: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < n and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(records)
        return got
    finally:
        await consumer.stop()
