"""TenantDeleted through a real Kafka broker empties the deleted tenant's answers from the cache
of every inference replica (each has a consumer group of its own), and only theirs."""

from __future__ import annotations

import pytest

from llmops_inference.api import tenants
from llmops_inference.domain.cache import AnswerCache, CacheKey
from llmops_inference.domain.model import Answer, Verdict
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import eventually, send_tenant_deleted, tenant_deleted_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SAFE = Verdict.ALLOW


def key(tenant: str, question: str) -> CacheKey:
    return CacheKey(tenant, "m@1", "p@1", question, True, 4, 64, ("c1",))


def filled(tenants_: tuple[str, ...]) -> AnswerCache:
    cache = AnswerCache(100, 600)
    for tenant in tenants_:
        for q in ("q1", "q2"):
            cache.put(key(tenant, q), Answer(f"{tenant}:{q}", [], None, None, SAFE, SAFE, False))
    return cache


async def test_every_replica_drops_the_deleted_tenants_answers(
        kafka: KafkaSettings, unique: str) -> None:
    gone, kept = f"gone-{unique}", f"kept-{unique}"
    topic = tenant_deleted_topic()
    await ensure_topics(kafka, [topic.topic], partitions=1)
    replicas = [(EventBus(kafka, client_id=f"test-inference-{unique}-{i}"), filled((gone, kept)))
                for i in range(2)]
    groups = [tenants.register(bus, cache, f"inference-{unique}", event_type=topic)
              for bus, cache in replicas]
    assert len(set(groups)) == 2 and all(g.startswith(f"inference-{unique}-tenants-")
                                         for g in groups)
    for bus, _ in replicas:
        await bus.start()
    try:
        await send_tenant_deleted(kafka, topic.topic, gone)

        async def all_dropped() -> bool:
            return all(len(cache) == 2 for _, cache in replicas)
        await eventually(all_dropped)
    finally:
        for bus, _ in replicas:
            await bus.stop()

    for _, cache in replicas:
        assert cache.get(key(gone, "q1")) is None and cache.get(key(gone, "q2")) is None
        answer = cache.get(key(kept, "q1"))
        assert answer is not None and answer.text == f"{kept}:q1"
