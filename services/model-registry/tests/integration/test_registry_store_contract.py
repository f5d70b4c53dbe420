"""The RegistryStore contract, one body per test run on SQLite and on Postgres.

Every test gets a fresh, empty database (see tests/conftest.py `database_url`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from llmops_kit.errors import DomainError
from llmops_registry.adapters.sql_schema import create_schema, make_engine
from llmops_registry.adapters.sql_store import SqlRegistryStore
from llmops_registry.domain.model import (
    Actor,
    Lineage,
    ModelAliasChangedEvent,
    ModelVersionCreatedEvent,
    NewModelVersion,
    NewPromptVersion,
    PromptLabelChangedEvent,
    PromptVersionCreatedEvent,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ACME = Actor("acme", "trace-acme")
GLOBEX = Actor("globex", "trace-globex")
ADMIN = Actor("platform", "trace-admin")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlRegistryStore]:
    engine = make_engine(database_url)
    create_schema(engine)
    try:
        yield SqlRegistryStore(engine)
    finally:
        engine.dispose()


def model(name: str = "m", uri: str = "file:///models/a", **kw: object) -> NewModelVersion:
    return NewModelVersion(name=name, artifact_uri=uri, base_model=str(kw.get("base", "b")),
                           format="hf", metadata=dict(kw.get("metadata", {})),  # type: ignore[call-overload]
                           lineage=kw.get("lineage", Lineage()))  # type: ignore[arg-type]


def prompt(name: str = "p", template: str = "Hi {{ who }}") -> NewPromptVersion:
    return NewPromptVersion(name=name, template=template, variables=("who",))


async def reason_of(coro: object) -> str:
    with pytest.raises(DomainError) as info:
        await coro  # type: ignore[misc]
    return info.value.reason


async def test_versions_count_up_per_model_and_keep_every_field(store: SqlRegistryStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    lineage = Lineage("base", 1, "job-7", "s3://data/train.jsonl")
    await store.create_model_version(model("base"), ACME)
    v1 = await store.create_model_version(
        model("m", metadata={"k": "v", "ü": "ß"}, lineage=lineage), ACME)
    v2 = await store.create_model_version(model("m", "pkg://p/f.gguf"), GLOBEX)
    other = await store.create_model_version(model("other"), ACME)
    assert v1 and v2 and other
    assert (v1.version, v2.version, other.version) == (1, 2, 1)
    got = await store.get_model_version("m", version=1)
    assert got == v1
    assert got.metadata == {"k": "v", "ü": "ß"} and got.lineage == lineage
    assert got.created_by == "acme" and (await store.get_model_version("m", 2)).created_by == "globex"
    assert got.created_at.tzinfo is not None and before <= got.created_at <= datetime.now(UTC)
    assert (await store.get_model_version("m")).artifact_uri == "pkg://p/f.gguf"  # newest
    assert (await store.get_model_version("m", alias="latest")).version == 2


async def test_missing_things_are_not_found_with_reasons(store: SqlRegistryStore) -> None:
    assert await reason_of(store.get_model_version("nope")) == "MODEL_NOT_FOUND"
    await store.create_model_version(model("m"), ACME)
    assert await reason_of(store.get_model_version("m", version=2)) == "VERSION_NOT_FOUND"
    assert await reason_of(store.get_model_version("m", alias="staging")) == "ALIAS_NOT_FOUND"
    assert await reason_of(store.set_alias("m", "production", 5, "", ACME)) == "VERSION_NOT_FOUND"
    assert await reason_of(store.set_alias("x", "production", 1, "", ACME)) == "MODEL_NOT_FOUND"
    assert await reason_of(store.delete_alias("m", "staging", "", ACME)) == "ALIAS_NOT_FOUND"
    assert await reason_of(store.list_model_versions("x", 10)) == "MODEL_NOT_FOUND"
    assert await reason_of(store.alias_history("x", None, 10)) == "MODEL_NOT_FOUND"
    bad_parent = model("child", lineage=Lineage("m", 9))
    assert await reason_of(store.create_model_version(bad_parent, ACME)) == "PARENT_NOT_FOUND"
    # The failed registration left nothing behind: no model `child`, no event.
    assert await reason_of(store.get_model_version("child")) == "MODEL_NOT_FOUND"
    assert [e.event.version.name for e in await store.pending_events(10)] == ["m"]  # type: ignore[union-attr]


async def test_aliases_move_and_every_change_is_in_history(store: SqlRegistryStore) -> None:
    for _ in range(3):
        await store.create_model_version(model("m"), ACME)
    first = await store.set_alias("m", "production", 1, "first release", ACME)
    assert (first.previous_version, first.version, first.changed) == (0, 1, True)
    moved = await store.set_alias("m", "production", 3, "better eval", GLOBEX)
    assert (moved.previous_version, moved.version, moved.changed) == (1, 3, True)
    same = await store.set_alias("m", "production", 3, "retry", ACME)
    assert (same.previous_version, same.changed) == (3, False)
    await store.set_alias("m", "staging", 2, "", ACME)
    assert (await store.get_model_version("m", alias="production")).version == 3
    v3 = await store.get_model_version("m", version=3)
    assert v3.aliases == ("production",)
    assert (await store.delete_alias("m", "staging", "cleanup", ACME)) == 2
    assert await reason_of(store.get_model_version("m", alias="staging")) == "ALIAS_NOT_FOUND"

    history = await store.alias_history("m", None, 10)
    assert [(c.pointer, c.from_version, c.to_version, c.actor, c.reason) for c in history] == [
        ("staging", 2, 0, "acme", "cleanup"),
        ("staging", 0, 2, "acme", ""),
        ("production", 1, 3, "globex", "better eval"),
        ("production", 0, 1, "acme", "first release"),
    ]
    seqs = [c.sequence for c in history]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 4
    prod = await store.alias_history("m", "production", 10)
    assert [c.to_version for c in prod] == [3, 1]
    page2 = await store.alias_history("m", None, 2, before_sequence=history[1].sequence)
    assert [c.sequence for c in page2] == seqs[2:4]


async def test_list_versions_newest_first_with_cursor(store: SqlRegistryStore) -> None:
    for i in range(5):
        await store.create_model_version(model("m", f"file:///m/{i}"), ACME)
    await store.set_alias("m", "production", 4, "", ACME)
    first = await store.list_model_versions("m", 2)
    assert [v.version for v in first] == [5, 4] and first[1].aliases == ("production",)
    rest = await store.list_model_versions("m", 10, before_version=4)
    assert [v.version for v in rest] == [3, 2, 1]
    assert [v.artifact_uri for v in rest] == ["file:///m/2", "file:///m/1", "file:///m/0"]


async def test_list_models_by_name_with_aliases(store: SqlRegistryStore) -> None:
    for name in ("c", "a", "b", "a"):
        await store.create_model_version(model(name), ACME)
    await store.set_alias("a", "production", 2, "", ACME)
    await store.set_alias("a", "canary", 1, "", ACME)
    summaries = await store.list_models(2)
    assert [(s.name, s.latest_version, s.pointers) for s in summaries] == [
        ("a", 2, {"canary": 1, "production": 2}), ("b", 1, {}),
    ]
    assert [s.name for s in await store.list_models(10, after_name="b")] == ["c"]


async def test_seeding_happens_once(store: SqlRegistryStore) -> None:
    seeded = await store.create_model_version(model("base"), ACME, ["production"],
                                              only_if_absent=True)
    assert seeded and seeded.version == 1 and seeded.aliases == ("production",)
    assert await store.create_model_version(model("base"), ACME, ["production"],
                                            only_if_absent=True) is None
    await store.create_model_version(model("other"), ACME)
    assert await store.create_model_version(model("other"), ACME, ["production"],
                                            only_if_absent=True) is None
    assert [v.version for v in await store.list_model_versions("base", 10)] == [1]
    p = await store.create_prompt_version(prompt("rag"), ACME, ["production"], only_if_absent=True)
    assert p and p.labels == ("latest", "production")
    assert await store.create_prompt_version(prompt("rag"), ACME, ["production"],
                                             only_if_absent=True) is None


async def test_concurrent_registrations_get_distinct_versions(store: SqlRegistryStore) -> None:
    results = await asyncio.gather(*(store.create_model_version(model("m"), ACME)
                                     for _ in range(8)))
    assert sorted(r.version for r in results if r) == list(range(1, 9))
    moves = await asyncio.gather(*(store.set_alias("m", "production", v, "", ACME)
                                   for v in range(1, 9)))
    assert sum(m.changed for m in moves) == 8
    # Whatever the order, the history is one unbroken chain ending where the alias points.
    chain = list(reversed(await store.alias_history("m", "production", 20)))
    assert chain[0].from_version == 0
    assert all(a.to_version == b.from_version for a, b in itertools.pairwise(chain))
    now = await store.get_model_version("m", alias="production")
    assert chain[-1].to_version == now.version


async def test_prompt_versions_move_latest_and_labels(store: SqlRegistryStore) -> None:
    p1 = await store.create_prompt_version(prompt(template="v1 {{ who }}"), ACME, ["production"])
    p2 = await store.create_prompt_version(prompt(template="v2 {{ who }}"), GLOBEX)
    assert p1 and p2 and (p1.version, p2.version) == (1, 2)
    assert p1.labels == ("latest", "production") and p2.labels == ("latest",)
    assert (await store.get_prompt_version("p", version=1)).labels == ("production",)
    assert (await store.get_prompt_version("p", label="latest")).template == "v2 {{ who }}"
    assert (await store.get_prompt_version("p", label="production")).version == 1
    got = await store.get_prompt_version("p", 2)
    assert got.variables == ("who",) and got.created_by == "globex"
    move = await store.set_prompt_label("p", "production", 2, "promote", ACME)
    assert (move.previous_version, move.version, move.changed) == (1, 2, True)
    history = await store.label_history("p", None, 10)
    assert [(c.pointer, c.from_version, c.to_version, c.actor) for c in history] == [
        ("production", 1, 2, "acme"),
        ("latest", 1, 2, "globex"),
        ("production", 0, 1, "acme"),
        ("latest", 0, 1, "acme"),
    ]
    assert [c.to_version for c in await store.label_history("p", "latest", 10)] == [2, 1]
    assert [v.version for v in await store.list_prompt_versions("p", 10)] == [2, 1]
    assert [v.version for v in await store.list_prompt_versions("p", 10, before_version=2)] == [1]
    await store.create_prompt_version(prompt("a"), ACME)
    assert [(s.name, s.pointers) for s in await store.list_prompts(10)] == [
        ("a", {"latest": 1}), ("p", {"latest": 2, "production": 2}),
    ]
    assert await reason_of(store.get_prompt_version("nope")) == "PROMPT_NOT_FOUND"
    assert await reason_of(store.get_prompt_version("p", 9)) == "PROMPT_VERSION_NOT_FOUND"
    assert await reason_of(store.get_prompt_version("p", label="qa")) == "LABEL_NOT_FOUND"
    assert await reason_of(store.set_prompt_label("p", "qa", 3, "", ACME)) == "PROMPT_VERSION_NOT_FOUND"


async def test_outbox_holds_every_change_in_order_until_published(
    store: SqlRegistryStore,
) -> None:
    await store.create_model_version(model("m"), ACME, ["production"])
    await store.create_model_version(model("m"), GLOBEX)
    await store.set_alias("m", "production", 2, "promote", GLOBEX)
    await store.delete_alias("m", "production", "retire", ACME)
    await store.create_prompt_version(prompt(), ACME)
    pending = await store.pending_events(100)
    kinds = [type(e.event).__name__ for e in pending]
    assert kinds == ["ModelVersionCreatedEvent", "ModelAliasChangedEvent",
                     "ModelVersionCreatedEvent", "ModelAliasChangedEvent",
                     "ModelAliasChangedEvent", "PromptVersionCreatedEvent",
                     "PromptLabelChangedEvent"]
    assert [e.tenant for e in pending] == ["acme", "acme", "globex", "globex", "acme", "acme",
                                           "acme"]
    assert pending[2].trace_id == "trace-globex" and len({e.event_id for e in pending}) == 7
    promote = pending[3].event
    assert isinstance(promote, ModelAliasChangedEvent)
    assert (promote.name, promote.change.from_version, promote.change.to_version) == ("m", 1, 2)
    assert promote.change.reason == "promote" and promote.target and promote.target.version == 2
    retire = pending[4].event
    assert isinstance(retire, ModelAliasChangedEvent)
    assert retire.change.to_version == 0 and retire.target is None
    assert isinstance(pending[0].event, ModelVersionCreatedEvent)
    assert isinstance(pending[5].event, PromptVersionCreatedEvent)
    label = pending[6].event
    assert isinstance(label, PromptLabelChangedEvent) and label.change.pointer == "latest"
    assert label.target and label.target.template == "Hi {{ who }}"

    await store.mark_failed(pending[0].id, "KafkaConnectionError: down")
    again = await store.pending_events(2)
    assert [e.id for e in again] == [pending[0].id, pending[1].id]
    assert again[0].attempts == 1 and again[0].event_id == pending[0].event_id
    await store.mark_published([e.id for e in pending[:5]])
    assert [e.id for e in await store.pending_events(100)] == [pending[5].id, pending[6].id]


async def test_replicas_creating_the_schema_at_once(database_url: str) -> None:
    engines = [make_engine(database_url) for _ in range(6)]
    try:
        await asyncio.gather(*(asyncio.to_thread(create_schema, e) for e in engines))
        first = await SqlRegistryStore(engines[0]).create_model_version(model("m"), ACME)
        assert first and first.version == 1
        assert (await SqlRegistryStore(engines[2]).get_model_version("m")).version == 1
    finally:
        for engine in engines:
            engine.dispose()


# ---------------------------------------------------------------------- tenant scopes


async def test_a_tenant_pointer_shadows_the_shared_one_for_that_tenant_only(
    store: SqlRegistryStore,
) -> None:
    for _ in range(3):
        await store.create_model_version(model("m"), ADMIN)
    await store.set_alias("m", "production", 1, "platform default", ADMIN)
    own = await store.set_alias("m", "production", 2, "acme canary", ACME, scope="acme")
    assert (own.previous_version, own.version, own.changed) == (0, 2, True)
    assert (await store.get_model_version("m", alias="production", tenant="acme")).version == 2
    assert (await store.get_model_version("m", alias="production", tenant="globex")).version == 1
    assert (await store.get_model_version("m", alias="production")).version == 1  # shared view
    # Moving the shared alias changes globex's resolution, not acme's own.
    await store.set_alias("m", "production", 3, "platform upgrade", ADMIN)
    assert (await store.get_model_version("m", alias="production", tenant="globex")).version == 3
    assert (await store.get_model_version("m", alias="production", tenant="acme")).version == 2
    assert (await store.get_model_version("m", version=2, tenant="acme")).aliases == \
        ("production",)
    assert (await store.get_model_version("m", version=3, tenant="acme")).aliases == ()
    assert (await store.get_model_version("m", version=3, tenant="globex")).aliases == \
        ("production",)
    assert [(s.name, s.pointers) for s in await store.list_models(10, tenant="acme")] == \
        [("m", {"production": 2})]
    assert [(s.name, s.pointers) for s in await store.list_models(10, tenant="globex")] == \
        [("m", {"production": 3})]
    # History: shared changes plus the tenant's own, each with its scope.
    acme = await store.alias_history("m", "production", 10, tenant="acme")
    assert [(c.tenant, c.from_version, c.to_version, c.actor) for c in acme] == [
        ("", 1, 3, "platform"), ("acme", 0, 2, "acme"), ("", 0, 1, "platform")]
    globex = await store.alias_history("m", None, 10, tenant="globex")
    assert [c.tenant for c in globex] == ["", ""]
    # Deleting acme's own alias: acme falls back to the shared one; deleting what a scope does
    # not have is ALIAS_NOT_FOUND and changes nothing.
    assert await reason_of(store.delete_alias("m", "production", "", GLOBEX, scope="globex")) == \
        "ALIAS_NOT_FOUND"
    assert await store.delete_alias("m", "production", "done", ACME, scope="acme") == 2
    assert (await store.get_model_version("m", alias="production", tenant="acme")).version == 3
    # The events name the scope of the change.
    changes = [e.event for e in await store.pending_events(100)
               if isinstance(e.event, ModelAliasChangedEvent)]
    assert [(c.change.tenant, c.change.to_version) for c in changes] == \
        [("", 1), ("acme", 2), ("", 3), ("acme", 0)]
    assert changes[1].target and changes[1].target.version == 2


async def test_tenant_versions_are_seen_by_their_tenant_only(store: SqlRegistryStore) -> None:
    await store.create_model_version(model("m"), ADMIN)
    private = await store.create_model_version(model("m", "file:///acme"), ACME, scope="acme")
    await store.create_model_version(model("m", "file:///globex"), GLOBEX, scope="globex")
    assert private and (private.version, private.tenant) == (2, "acme")
    assert (await store.get_model_version("m", tenant="acme")).version == 2
    assert (await store.get_model_version("m", alias="latest", tenant="globex")).version == 3
    assert (await store.get_model_version("m")).version == 1  # shared view: shared only
    assert await reason_of(store.get_model_version("m", version=2, tenant="globex")) == \
        "VERSION_NOT_FOUND"
    assert [v.version for v in await store.list_model_versions("m", 10, tenant="acme")] == [2, 1]
    assert [s.latest_version for s in await store.list_models(10, tenant="globex")] == [3]
    # A pointer may name what its scope sees: never another tenant's version, and a shared
    # pointer never a tenant's.
    assert await reason_of(store.set_alias("m", "production", 2, "", GLOBEX, scope="globex")) == \
        "VERSION_NOT_FOUND"
    assert await reason_of(store.set_alias("m", "production", 2, "", ADMIN)) == \
        "VERSION_NOT_FOUND"
    await store.set_alias("m", "production", 2, "", ACME, scope="acme")
    got = await store.get_model_version("m", alias="production", tenant="acme")
    assert (got.artifact_uri, got.tenant) == ("file:///acme", "acme")
    # Lineage: a version may derive only from one its scope sees.
    child = model("child", lineage=Lineage("m", 2))
    assert await reason_of(store.create_model_version(child, GLOBEX, scope="globex")) == \
        "PARENT_NOT_FOUND"
    assert await store.create_model_version(child, ACME, scope="acme")
    # A name only acme has versions of is missing for everyone else, in every read.
    assert await reason_of(store.get_model_version("child", tenant="globex")) == \
        "MODEL_NOT_FOUND"
    assert await reason_of(store.list_model_versions("child", 10, tenant="globex")) == \
        "MODEL_NOT_FOUND"
    assert await reason_of(store.alias_history("child", None, 10)) == "MODEL_NOT_FOUND"
    assert [s.name for s in await store.list_models(10, tenant="globex")] == ["m"]
    created = [e.event for e in await store.pending_events(100)
               if isinstance(e.event, ModelVersionCreatedEvent)]
    assert [(c.version.version, c.version.tenant) for c in created][:3] == \
        [(1, ""), (2, "acme"), (3, "globex")]


async def test_tenant_prompt_versions_and_labels_shadow_the_shared_prompt(
    store: SqlRegistryStore,
) -> None:
    await store.create_prompt_version(prompt(template="shared {{ who }}"), ADMIN, ["production"])
    own = await store.create_prompt_version(prompt(template="acme {{ who }}"), ACME,
                                            ["production"], scope="acme")
    assert own and (own.version, own.tenant, own.labels) == (2, "acme", ("latest", "production"))
    for tenant, version in (("acme", 2), ("globex", 1), ("", 1)):
        assert (await store.get_prompt_version("p", label="production",
                                               tenant=tenant)).version == version
        assert (await store.get_prompt_version("p", label="latest", tenant=tenant)).version == \
            version
        assert (await store.get_prompt_version("p", tenant=tenant)).version == version
    await store.create_prompt_version(prompt(template="v3 {{ who }}"), ADMIN, ["production"])
    assert (await store.get_prompt_version("p", label="production", tenant="acme")).version == 2
    assert (await store.get_prompt_version("p", label="production",
                                           tenant="globex")).version == 3
    assert await reason_of(store.get_prompt_version("p", 2, tenant="globex")) == \
        "PROMPT_VERSION_NOT_FOUND"
    assert [(s.latest_version, s.pointers) for s in await store.list_prompts(10, tenant="acme")] \
        == [(3, {"latest": 2, "production": 2})]
    assert [(s.latest_version, s.pointers)
            for s in await store.list_prompts(10, tenant="globex")] == \
        [(3, {"latest": 3, "production": 3})]
    await store.set_prompt_label("p", "production", 3, "adopt v3", ACME, scope="acme")
    history = await store.label_history("p", "production", 10, tenant="acme")
    assert [(c.tenant, c.to_version) for c in history] == \
        [("acme", 3), ("", 3), ("acme", 2), ("", 1)]
    assert [(c.tenant, c.to_version)
            for c in await store.label_history("p", "production", 10, tenant="globex")] == \
        [("", 3), ("", 1)]


async def test_a_database_from_before_scopes_is_refused_at_start(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE model_aliases (model_id INTEGER, alias "
                                 "VARCHAR(63), version INTEGER, PRIMARY KEY (model_id, alias))")
        with pytest.raises(RuntimeError, match="predates tenant scopes"):
            create_schema(engine)
    finally:
        engine.dispose()
