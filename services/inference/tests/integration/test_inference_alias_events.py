"""Every inference replica sees every ModelAliasChanged (real Kafka broker)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from llmops.registry.v1 import registry_pb2
from llmops_inference.api.events import AliasHandlers, register
from llmops_inference.settings import Settings
from llmops_kit import events
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class Resolutions:
    """Stands in for the registry client: records which models were invalidated."""

    def __init__(self) -> None:
        self.invalidated: Counter[str] = Counter()

    async def resolve(self, alias: str) -> object:
        raise AssertionError("not resolved in this test")

    def invalidate(self, model_name: str | None = None, tenant: str | None = None) -> None:
        self.invalidated[model_name or ""] += 1


async def until(predicate, timeout: float = 60, tick: float = 0.3, each=None) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        if each is not None:
            await each()
        await asyncio.sleep(tick)


async def test_two_replicas_both_invalidate_on_one_change(kafka: KafkaSettings) -> None:
    run = uuid.uuid4().hex[:10]
    topic = events.EventType(f"llmops.test-{run}.model-alias-changed.v1",
                             registry_pb2.ModelAliasChanged)
    await ensure_topics(kafka, [topic.topic], partitions=2)
    # Two replicas configured alike: only the default replica id tells them apart.
    settings = [Settings(consumer_group=f"inference-{run}") for _ in range(2)]
    groups = [s.alias_consumer_group() for s in settings]
    assert groups[0] != groups[1]
    replicas = [Resolutions(), Resolutions()]
    buses = [EventBus(kafka, client_id=f"test-inference-{run}-{i}") for i in range(2)]
    for bus, models, group in zip(buses, replicas, groups, strict=True):
        register(bus, AliasHandlers(models), group, source=topic)  # type: ignore[arg-type]

    async def change(name: str) -> None:
        await buses[0].publish(topic, registry_pb2.ModelAliasChanged(
            envelope=events.make_envelope("test", tenant="acme"), name=name), name.encode())

    for bus in buses:
        await bus.start()
    try:
        # A new group starts at the latest offset once it has partitions: announce until both
        # replicas are listening, then send the one change that counts.
        await until(lambda: all(r.invalidated["warm-up"] for r in replicas),
                    each=lambda: change("warm-up"))
        await change("smollm2")
        await until(lambda: all(r.invalidated["smollm2"] for r in replicas))
        await asyncio.sleep(1)  # nothing more arrives
    finally:
        for bus in buses:
            await bus.stop()
    assert [r.invalidated["smollm2"] for r in replicas] == [1, 1]
