"""The CanaryStore and Lease contract on SQLite and on Postgres (fresh database per test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from llmops_kit.errors import DomainError
from llmops_registry.adapters.sql_rollout import SqlRolloutStore
from llmops_registry.adapters.sql_schema import create_schema, make_engine
from llmops_registry.adapters.sql_store import SqlRegistryStore
from llmops_registry.domain.canary import CanarySpec, CanaryState, Thresholds
from llmops_registry.domain.model import Actor, ModelAliasChangedEvent, NewModelVersion

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ACME = Actor("acme", "trace-acme")
ADMIN = Actor("platform", "trace-admin")
SPEC = CanarySpec(candidate=2, share=10, step=30, max_share=70, interval_seconds=5,
                  threshold=3, thresholds=Thresholds(min_requests=7))


@dataclass
class Stores:
    registry: SqlRegistryStore
    rollout: SqlRolloutStore


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[Stores]:
    engine = make_engine(database_url)
    create_schema(engine)
    reg = SqlRegistryStore(engine)
    for _ in range(3):
        await reg.create_model_version(NewModelVersion("m", "file:///m"), ADMIN)
    await reg.set_alias("m", "production", 1, "first", ADMIN)
    try:
        yield Stores(reg, SqlRolloutStore(engine))
    finally:
        engine.dispose()


async def reason_of(coro: object) -> str:
    with pytest.raises(DomainError) as info:
        await coro  # type: ignore[misc]
    return info.value.reason


async def test_start_stores_the_canary_and_moves_the_canary_alias(stores: Stores) -> None:
    c = await stores.rollout.start_canary("acme", "m", SPEC, "go", ACME)
    assert (c.tenant, c.name, c.production, c.candidate, c.share, c.step, c.max_share,
            c.interval_seconds, c.threshold, c.last_good) == ("acme", "m", 1, 2, 10, 30, 70, 5,
                                                              3, 1)
    assert c.thresholds.min_requests == 7 and c.state is CanaryState.PROGRESSING
    assert c.next_check_at is not None and c.next_check_at - c.started_at == timedelta(seconds=5)
    assert await stores.rollout.get_canary("acme", "m") == c
    assert (await stores.registry.get_model_version("m", alias="canary", tenant="acme")
            ).version == 2
    # Shared scope and other tenants see no canary alias.
    assert await reason_of(stores.registry.get_model_version("m", alias="canary")) \
        == "ALIAS_NOT_FOUND"
    assert await reason_of(stores.rollout.get_canary("globex", "m")) == "CANARY_NOT_FOUND"
    assert await reason_of(stores.rollout.start_canary("acme", "m", SPEC, "", ACME)) \
        == "CANARY_IN_PROGRESS"
    assert await reason_of(stores.rollout.start_canary("acme", "nope", SPEC, "", ACME)) \
        == "MODEL_NOT_FOUND"


async def test_two_starts_at_once_make_one_canary(stores: Stores) -> None:
    results = await asyncio.gather(
        stores.rollout.start_canary("acme", "m", SPEC, "a", ACME),
        stores.rollout.start_canary("acme", "m", replace(SPEC, candidate=3), "b", ACME),
        return_exceptions=True)
    errors = [r for r in results if isinstance(r, DomainError)]
    assert len(errors) == 1 and errors[0].reason == "CANARY_IN_PROGRESS"


async def test_steps_due_canaries_and_history(stores: Stores) -> None:
    c = await stores.rollout.start_canary("acme", "m", SPEC, "go", ACME)
    now = datetime.now(UTC)
    assert await stores.rollout.due_canaries(now, 10) == []
    due = await stores.rollout.due_canaries(now + timedelta(seconds=6), 10)
    assert [d.id for d in due] == [c.id]
    later = now + timedelta(seconds=6)
    stepped = replace(c, share=40, reason="share 10% -> 40%", updated_at=later,
                      window_start=later, next_check_at=later + timedelta(seconds=5))
    saved = await stores.rollout.save_step(stepped, "share 10% -> 40%", ACME, note=True)
    assert saved is not None and saved.share == 40 and saved.window_start == later
    promoted = replace(saved, state=CanaryState.PROMOTED, share=100, next_check_at=None)
    done = await stores.rollout.save_step(promoted, "promoted v2", ACME, note=False)
    assert done is not None and done.state is CanaryState.PROMOTED
    assert (await stores.registry.get_model_version("m", alias="production", tenant="acme")
            ).version == 2
    assert (await stores.registry.get_model_version("m", alias="production")).version == 1
    # A canary that ended takes no more steps.
    assert await stores.rollout.save_step(saved, "late", ACME, note=True) is None
    history = await stores.rollout.rollout_history("acme", "m", 10, None)
    assert [(h.pointer, h.from_version, h.to_version, h.reason) for h in history] == [
        ("canary", 2, 0, "promoted v2"), ("production", 0, 2, "promoted v2"),
        ("canary", 2, 2, "share 10% -> 40%"), ("canary", 0, 2, "go"),
        ("production", 0, 1, "first")]
    # Each change is in the outbox, in order.
    pending = [e.event for e in await stores.registry.pending_events(100)
               if isinstance(e.event, ModelAliasChangedEvent)]
    assert [e.change.reason for e in pending][-4:] == ["go", "share 10% -> 40%",
                                                       "promoted v2", "promoted v2"]
    back = await stores.rollout.roll_back_promotion(done, "rolled back", ACME)
    assert back.state is CanaryState.ROLLED_BACK
    assert (await stores.registry.get_model_version("m", alias="production", tenant="acme")
            ).version == 1


async def test_alias_rollback_goes_back_once(stores: Stores) -> None:
    await stores.registry.set_alias("m", "production", 3, "ship v3", ACME, scope="acme")
    await stores.registry.set_alias("m", "production", 2, "ship v2", ACME, scope="acme")
    assert await stores.rollout.roll_back_alias("acme", "m", "rollback: bad", ACME) == (2, 3)
    assert await reason_of(stores.rollout.roll_back_alias("acme", "m", "rollback", ACME)) \
        == "NOTHING_TO_ROLL_BACK"
    assert await reason_of(stores.rollout.roll_back_alias("globex", "m", "rollback", ACME)) \
        == "NOTHING_TO_ROLL_BACK"


async def test_lease_is_held_renewed_and_taken_over_after_expiry(stores: Stores) -> None:
    assert await stores.rollout.acquire_lease("ctl", "a", 0.5)
    assert await stores.rollout.acquire_lease("ctl", "a", 0.5)  # renewed
    assert not await stores.rollout.acquire_lease("ctl", "b", 0.5)
    assert await stores.rollout.acquire_lease("other", "b", 0.5)  # another lease
    await asyncio.sleep(0.7)
    assert await stores.rollout.acquire_lease("ctl", "b", 5)
    assert not await stores.rollout.acquire_lease("ctl", "a", 5)


async def test_a_deleted_tenant_leaves_no_canary(stores: Stores) -> None:
    from llmops_registry.adapters.sql_tenants import SqlTenantData

    await stores.rollout.start_canary("acme", "m", SPEC, "go", ACME)
    assert await SqlTenantData(stores.rollout.engine).delete_tenant_data("acme") > 0
    assert await reason_of(stores.rollout.get_canary("acme", "m")) == "CANARY_NOT_FOUND"
    assert await stores.rollout.due_canaries(datetime.now(UTC) + timedelta(hours=1), 10) == []
