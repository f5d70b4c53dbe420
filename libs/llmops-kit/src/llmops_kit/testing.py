"""pytest plugin shared by every test tier (loaded from the root conftest.py).

Infrastructure fixtures start the real thing through the project's infra scripts and fail
(never skip) when it cannot be started.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from llmops.admin.v1 import admin_pb2
from llmops_kit import events, ports
from llmops_kit.grpc_server import error_reason
from llmops_kit.settings import KafkaSettings, secret_file

__all__ = ["REPO", "error_reason", "eventually", "group_caught_up", "infra_script",
           "postgres_url", "read_topic", "send_tenant_deleted", "start_group_at_end",
           "tenant_deleted_topic"]

REPO = Path(__file__).resolve().parents[4]


def pytest_configure(config: pytest.Config) -> None:
    """Tests run in development mode (the well-known dev keys are accepted) against a platform
    database of their own, unless the caller chose otherwise."""
    os.environ.setdefault("LLMOPS_DEV_MODE", "true")
    # Service processes started by tests serve no /metrics unless a test gives them a port:
    # the default ports would collide with a running stack and with concurrent test runs.
    for name in ports.defaults():
        if name.endswith("_METRICS_PORT"):
            os.environ.setdefault(name, "0")
    if "LLMOPS_AUTH_DATABASE_URL" not in os.environ:
        folder = tempfile.mkdtemp(prefix="llmops-auth-")
        os.environ["LLMOPS_AUTH_DATABASE_URL"] = f"sqlite:///{folder}/platform.db"


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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a database of this test session's own on the local Postgres
    (infra/scripts/postgres.sh, started if needed), dropped at the end."""
    from sqlalchemy import create_engine

    infra_script("postgres", "start")
    proc = subprocess.run(["bash", str(REPO / "infra" / "scripts" / "postgres.sh"), "url"],
                          capture_output=True, text=True, timeout=30, check=False)
    server = proc.stdout.strip()
    if proc.returncode != 0 or not server:
        pytest.fail(f"postgres.sh url failed: {proc.stderr[-2000:]}", pytrace=False)
    name = f"kit_test_{uuid.uuid4().hex[:12]}"

    def admin(statement: str) -> None:
        engine = create_engine(server, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group and collection names."""
    return uuid.uuid4().hex[:10]




async def read_topic(kafka: KafkaSettings, topic: str, n: int, timeout: float = 60) -> list[Any]:
    """The records of `topic` from its start, once there are `n` of them or `timeout` passed."""
    consumer = AIOKafkaConsumer(topic, **kafka.client_options(), auto_offset_reset="earliest",
                                group_id=None, max_partition_fetch_bytes=kafka.consumer_fetch_bytes)
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


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    """Polls `predicate` until it holds; fails the test when `timeout` passes first."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not reached within {timeout:.0f}s", pytrace=False)
        await asyncio.sleep(0.2)


def tenant_deleted_topic() -> events.EventType[admin_pb2.TenantDeleted]:
    """A TenantDeleted topic of this test's own (create it with ensure_topics)."""
    return events.EventType(f"llmops.test-{uuid.uuid4().hex[:10]}.tenant-deleted.v1",
                            admin_pb2.TenantDeleted)


async def send_tenant_deleted(kafka: KafkaSettings, topic: str, *tenant_ids: str) -> None:
    """Publishes one TenantDeleted per tenant id, as AdminService.DeleteTenant does."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for tenant in tenant_ids:
            event = admin_pb2.TenantDeleted(envelope=events.make_envelope("test", tenant="admin"),
                                            tenant_id=tenant)
            await producer.send_and_wait(topic, event.SerializeToString(),
                                         key=tenant.encode() or b"-")
    finally:
        await producer.stop()


async def _end_offsets(kafka: KafkaSettings, names: list[str]) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    consumer = AIOKafkaConsumer(**kafka.client_options())
    await admin.start()
    await consumer.start()
    try:
        described = await admin.describe_topics(names)
        parts = [TopicPartition(d["topic"], p["partition"]) for d in described
                 if not d.get("error_code") for p in d["partitions"]]
        return dict(await consumer.end_offsets(parts)) if parts else {}
    finally:
        await consumer.stop()
        await admin.close()


async def group_caught_up(kafka: KafkaSettings, group: str, names: list[str]) -> bool:
    """Whether consumer group `group` has committed every record of the topics `names`."""
    ends = await _end_offsets(kafka, names)
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return bool(ends) and all(
        (committed[tp].offset if tp in committed else 0) >= end for tp, end in ends.items())


async def start_group_at_end(kafka: KafkaSettings, group: str, names: list[str]) -> None:
    """Commits the current end of every partition of `names` for `group`, so a consumer of
    that group starts with what is produced from now on rather than the topics' history."""
    ends = await _end_offsets(kafka, names)
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit(ends)
    finally:
        await consumer.stop()
