"""TenantDeleted through a real Kafka broker: the registry's SQLite store keeps no outbox row of
the deleted tenant (published ones deleted, pending ones detached), while shared models and
prompts and other tenants' rows stay."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import eventually, send_tenant_deleted, tenant_deleted_topic
from llmops_registry.adapters.sql_schema import OutboxRow, create_schema, make_engine
from llmops_registry.adapters.sql_store import SqlRegistryStore
from llmops_registry.adapters.sql_tenants import SqlTenantData
from llmops_registry.api import tenants
from llmops_registry.domain.errors import Missing
from llmops_registry.domain.model import Actor, NewPromptVersion

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_tenant_deleted_removes_the_tenants_outbox_rows(
        tmp_path: Path, kafka: KafkaSettings, unique: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/registry.db")
    create_schema(engine)
    store = SqlRegistryStore(engine)
    gone, kept = f"gone-{unique}", f"kept-{unique}"

    async def create(tenant: str, i: int) -> None:
        await store.create_prompt_version(
            NewPromptVersion(f"p-{tenant}-{i}", "Hi {{ x }}", ("x",)), Actor(tenant, "t1"), [])

    for i in range(2):  # published events of both tenants
        await create(gone, i)
        await create(kept, i)
    await store.mark_published([e.id for e in await store.pending_events(100)])
    await create(gone, 2)  # and events not yet published
    await create(kept, 2)
    own = f"own-{unique}"  # each tenant's own scope: a prompt version with its own label

    def outbox_ids() -> set[int]:
        with Session(engine) as s:
            return set(s.scalars(select(OutboxRow.id)))

    announced: dict[str, set[int]] = {}
    for tenant in (gone, kept):
        ids = outbox_ids()
        await store.create_prompt_version(NewPromptVersion(own, f"{tenant} {{{{ x }}}}", ("x",)),
                                          Actor(tenant, "t2"), ["production"], scope=tenant)
        announced[tenant] = outbox_ids() - ids

    def rows(skip: set[int] | None = None) -> list[tuple[str, bool]]:
        with Session(engine) as s:
            return [(r.tenant, r.published_at is not None)
                    for r in s.scalars(select(OutboxRow).order_by(OutboxRow.id))
                    if r.id not in (skip or set())]

    assert (await store.get_prompt_version(own, label="production", tenant=gone)).template \
        == f"{gone} {{{{ x }}}}"
    assert len(announced[gone]) == 3  # version created, `latest` and `production` moved
    before = rows(skip=announced[gone])  # those go with the tenant's own scope
    assert (gone, True) in before and (gone, False) in before and (kept, False) in before

    topic = tenant_deleted_topic()
    await ensure_topics(kafka, [topic.topic], partitions=1)
    bus = EventBus(kafka, client_id=f"test-registry-tenants-{unique}")
    tenants.register(bus, SqlTenantData(engine), group=f"registry-tenants-{unique}",
                     event_type=topic)
    await bus.start()
    try:
        await send_tenant_deleted(kafka, topic.topic, gone)

        async def no_rows_of_tenant() -> bool:
            return all(tenant != gone for tenant, _ in rows())
        await eventually(no_rows_of_tenant)
    finally:
        await bus.stop()

    expected = [("" if t == gone else t, p) for t, p in before if (t, p) != (gone, True)]
    assert rows() == expected
    pending = await store.pending_events(100)  # the shared change is still announced
    assert {e.tenant for e in pending} == {"", kept}
    assert len(pending) == before.count((gone, False)) + before.count((kept, False))
    assert (await store.get_prompt_version(f"p-{gone}-0", 1, None)).template == "Hi {{ x }}"
    with pytest.raises(Missing):  # the tenant's own scope is gone, the other tenant's stays
        await store.get_prompt_version(own, label="production", tenant=gone)
    assert (await store.get_prompt_version(own, label="production", tenant=kept)).template \
        == f"{kept} {{{{ x }}}}"
    assert await SqlTenantData(engine).delete_tenant_data(gone) == 0
    engine.dispose()
