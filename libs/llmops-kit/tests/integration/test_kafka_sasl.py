"""Kafka with SASL/SCRAM and ACLs (`KAFKA_SASL=1 infra/scripts/kafka.sh start`), on a broker of
this module's own (its own LLMOPS_HOME and free ports; the shared broker is left alone):
anonymous clients and wrong passwords are refused, only the allowed principals write
document-submitted, and the platform's EventBus works with its credentials."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from llmops.ingestion.v1 import events_pb2
from llmops_kit import events, topics
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings, llmops_home
from llmops_kit.testing import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

SUBMITTER, GUEST = "llmops-submitter", "llmops-guest"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kafka_script(action: str, env: dict[str, str]) -> None:
    proc = subprocess.run(["bash", str(REPO / "infra/scripts/kafka.sh"), action], env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    if proc.returncode != 0:
        pytest.fail(f"kafka.sh {action} (SASL) failed:\n{proc.stdout[-2000:]}\n"
                    f"{proc.stderr[-3000:]}", pytrace=False)


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("kafka-sasl")
    # The jars of the usual LLMOPS_HOME, when there are some: no second Maven download.
    libs = llmops_home().resolve() / "kafka" / "libs"
    if libs.is_dir():
        (home / "kafka").mkdir()
        (home / "kafka" / "libs").symlink_to(libs)
    port = free_port()
    env = {**os.environ, "LLMOPS_HOME": str(home), "KAFKA_PORT": str(port),
           "KAFKA_CONTROLLER_PORT": str(free_port()), "KAFKA_SASL": "1",
           "KAFKA_SASL_USERS": f"{SUBMITTER} {GUEST}", "KAFKA_SUBMITTERS": SUBMITTER}
    kafka_script("start", env)
    try:
        yield {"bootstrap": f"127.0.0.1:{port}", "secrets": home / "secrets" / "kafka"}
    finally:
        kafka_script("stop", env)


def password(broker: dict[str, Any], user: str) -> str:
    return (broker["secrets"] / f"{user}.password").read_text().strip()


def as_user(broker: dict[str, Any], user: str, secret: str | None = None) -> dict[str, Any]:
    return {"bootstrap_servers": broker["bootstrap"], "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": user,
            "sasl_plain_password": secret or password(broker, user)}


@pytest.fixture(scope="module")
def platform(sasl_broker: dict[str, Any]) -> KafkaSettings:
    """The kit's settings as a service gets them: the password from the file kafka.sh wrote."""
    return KafkaSettings(bootstrap_servers=sasl_broker["bootstrap"],
                         security_protocol="SASL_PLAINTEXT",
                         password_file=sasl_broker["secrets"] / "llmops-platform.password")


@pytest.fixture(scope="module")
async def created_topics(platform: KafkaSettings) -> list[str]:
    await ensure_topics(platform, [topics.DOCUMENT_SUBMITTED, topics.CHUNKS_CREATED])
    admin = AIOKafkaAdminClient(**platform.client_options())
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


async def keys_of(settings: KafkaSettings, topic: str, n: int) -> list[bytes]:
    """The keys of the first `n` records of `topic`, read with the settings' credentials."""
    consumer = AIOKafkaConsumer(topic, **settings.client_options(), auto_offset_reset="earliest",
                                group_id=None)
    await consumer.start()
    got: list[bytes] = []
    try:
        for _ in range(60):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(r.key for r in records)
            if len(got) >= n:
                break
        return got
    finally:
        await consumer.stop()


async def produce(topic: str, **options: Any) -> None:
    producer = AIOKafkaProducer(request_timeout_ms=10_000, **options)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"payload", key=b"acme/doc")
    finally:
        await producer.stop()


def test_secrets_are_private(sasl_broker: dict[str, Any]) -> None:
    for path in [*sasl_broker["secrets"].iterdir(), Path(sasl_broker["secrets"]).parent]:
        assert path.stat().st_mode & 0o077 == 0, path
    config = Path(sasl_broker["secrets"]).parents[1] / "kafka" / "server.properties"
    assert config.stat().st_mode & 0o077 == 0


async def test_platform_creates_topics_with_its_credentials(created_topics: list[str]) -> None:
    assert {topics.DOCUMENT_SUBMITTED, topics.CHUNKS_CREATED,
            topics.dead_letter(topics.DOCUMENT_SUBMITTED)} <= set(created_topics)


async def test_an_unauthenticated_producer_is_refused(sasl_broker: dict[str, Any],
                                                      created_topics: list[str]) -> None:
    with pytest.raises(KafkaConnectionError):
        await produce(topics.DOCUMENT_SUBMITTED, bootstrap_servers=sasl_broker["bootstrap"])


async def test_a_wrong_password_is_refused(sasl_broker: dict[str, Any],
                                           created_topics: list[str]) -> None:
    with pytest.raises(KafkaConnectionError):
        await produce(topics.DOCUMENT_SUBMITTED, **as_user(sasl_broker, SUBMITTER, "guessed"))


async def test_only_allowed_principals_write_document_submitted(
    sasl_broker: dict[str, Any], platform: KafkaSettings, created_topics: list[str]
) -> None:
    # Authenticated, but no ACL lets it write: refused by the authorizer.
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(topics.DOCUMENT_SUBMITTED, **as_user(sasl_broker, GUEST))
    # The submitter may write document-submitted, and nothing else.
    await produce(topics.DOCUMENT_SUBMITTED, **as_user(sasl_broker, SUBMITTER))
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(topics.CHUNKS_CREATED, **as_user(sasl_broker, SUBMITTER))
    assert await keys_of(platform, topics.DOCUMENT_SUBMITTED, 1) == [b"acme/doc"]


async def test_the_event_bus_works_with_credentials(platform: KafkaSettings,
                                                    created_topics: list[str]) -> None:
    assert platform.client_options()["sasl_plain_username"] == "llmops-platform"
    bus = EventBus(platform, client_id="test-sasl")
    seen: list[str] = []
    done = asyncio.Event()

    async def handler(batch: Any) -> None:
        seen.extend(item.event.document_id for item in batch.items)
        done.set()

    bus.subscribe_batch(events.DOCUMENT_DELETED, "test-sasl-group", handler)
    await bus.start()
    try:
        event = events_pb2.DocumentDeleted(
            envelope=events.make_envelope("test", tenant="acme"), document_id="doc-sasl")
        await bus.publish(events.DOCUMENT_DELETED, event, key=b"acme/doc-sasl")
        await asyncio.wait_for(done.wait(), timeout=60)
    finally:
        await bus.stop()
    assert seen == ["doc-sasl"]
