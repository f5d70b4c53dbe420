"""Per-model collections, writes during a re-embed, the switch, crash resume (fakes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from llmops_kit.context import deadline_var, time_left
from llmops_kit.errors import FailedPrecondition
from llmops_vectorstore.adapters.weaviate_collections import state_from_json, state_to_json
from llmops_vectorstore.domain.indexing import Indexer
from llmops_vectorstore.domain.layout import (
    EmbeddingState,
    LayoutCache,
    ModelCollection,
    Phase,
    collection_name,
)
from llmops_vectorstore.domain.model import ChunkRecord, DocumentState, SearchMode, StoreQuery
from llmops_vectorstore.domain.reembed import ReEmbedder
from llmops_vectorstore.domain.routing import RoutedStore

pytestmark = pytest.mark.unit

OLD, NEW = "old/model", "new/model"
DIMS = {OLD: 2, NEW: 3}
ACTIVE = ModelCollection(OLD, 2, "Chunk")


class FakeCollections:
    """FakeStores per collection name sharing one document-state table (as Weaviate's
    collections share the documents collection)."""

    def __init__(self, make_store: Callable[[], Any]) -> None:
        self.make_store = make_store
        self.documents: dict[str, dict[str, DocumentState]] = {}
        self.by_name: dict[str, Any] = {}
        self.recreated: list[str] = []

    def store(self, collection: ModelCollection) -> Any:
        if collection.collection not in self.by_name:
            store = self.make_store()
            store.documents = self.documents
            self.by_name[collection.collection] = store
        return self.by_name[collection.collection]

    async def ensure(self, collection: ModelCollection) -> None:
        self.store(collection)

    async def recreate(self, collection: ModelCollection) -> None:
        self.recreated.append(collection.collection)
        self.by_name.pop(collection.collection, None)
        self.store(collection)

    async def tenants(self, collection: ModelCollection) -> list[str]:
        return sorted(t for t, rows in self.store(collection).chunks.items() if rows)

    async def chunks(
        self, collection: ModelCollection, tenant: str, page_size: int
    ) -> AsyncIterator[list[ChunkRecord]]:
        rows = sorted(self.store(collection).chunks.get(tenant, {}).values(),
                      key=lambda c: c.chunk_id)
        for start in range(0, len(rows), page_size):
            yield [replace(c, vector=()) for c in rows[start : start + page_size]]

    async def delete_tenant(self, collections: Sequence[ModelCollection], tenant: str) -> int:
        removed = 0
        for c in collections:
            removed += len(self.store(c).chunks.pop(tenant, {}))
        self.documents.pop(tenant, None)
        return removed

    async def forget_tenant(self, collections: Sequence[ModelCollection], tenant: str) -> int:
        return 0


class FakeStates:
    def __init__(self, state: EmbeddingState | None = None) -> None:
        self.state = state
        self.saves = 0

    async def load(self) -> EmbeddingState | None:
        return self.state

    async def save(self, state: EmbeddingState) -> None:
        self.saves += 1
        self.state = state


class FakeTexts:
    """Vectors [len(text), 1, ...] of the model's length; fails or waits on request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.fail_on: str | None = None
        self.gate: asyncio.Event | None = None
        self.before: list = []

    async def embed_texts(self, texts: Sequence[str], model: str) -> list[list[float]]:
        if self.gate is not None:
            await self.gate.wait()
        time_left(5.0)  # as the real client: fails once the bound deadline has passed
        self.calls.append((model, list(texts)))
        for hook in self.before:
            await hook(texts)
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise ConnectionError("embedding service went away")
        return [[float(len(t))] + [1.0] * (DIMS[model] - 1) for t in texts]

    async def model_info(self, model: str) -> tuple[str, int]:
        name = {"new": NEW, NEW: NEW, "old": OLD, OLD: OLD}.get(model)
        if name is None:
            raise FailedPrecondition("MODEL_NOT_SERVED", f"{model} is not served")
        return name, DIMS[name]


def chunk(tenant: str, doc: str, i: int, version: int = 1, model: str = OLD) -> ChunkRecord:
    text = f"{tenant} {doc} chunk {i}"
    return ChunkRecord(f"{tenant}-{doc}-{version}-{i}", doc, version, i, text,
                       [float(len(text)), 1.0], model=model)


@pytest.fixture
def world(store):
    # tests/conftest.py's FakeStore, one per collection.
    collections = FakeCollections(type(store))
    states, texts = FakeStates(EmbeddingState(ACTIVE)), FakeTexts()
    layout = LayoutCache(states, ttl=0.0)
    routed = RoutedStore(collections, layout, texts)
    job = ReEmbedder(states, collections, texts, layout, base_collection="Chunk",
                     tokenization="kagome_kr", owner="me", page_size=2, settle_seconds=0)
    return collections, states, texts, routed, job


async def index(routed: RoutedStore, tenant: str, doc: str, n: int, version: int = 1) -> None:
    from llmops_vectorstore.domain.model import VectorBatch

    chunks = [chunk(tenant, doc, i, version) for i in range(n)]
    await Indexer(routed).apply_vectors(tenant, VectorBatch(doc, version, chunks, model=OLD))


def test_collection_names_per_model():
    assert collection_name("LlmopsChunk", "google/universal-sentence-encoder-multilingual-3") == (
        "LlmopsChunk_google_universal_sentence_encoder_multilingual_3")
    assert collection_name("LlmopsChunk", "sentence-transformers/all-MiniLM-L6-v2") == (
        "LlmopsChunk_sentence_transformers_all_MiniLM_L6_v2")


def test_state_round_trips_through_json():
    state = EmbeddingState(ACTIVE, target=ModelCollection(NEW, 3, "Chunk_new", "kagome_kr"),
                           phase=Phase.BUILDING, tenants=("a", "b"), tenants_done=("a",),
                           chunks_copied=7, started_at=1.5, previous=None, owner="x")
    assert state_from_json(state_to_json(state)) == state


async def test_without_a_build_writes_and_reads_go_to_the_active_collection(world):
    collections, _, texts, routed, _ = world
    await index(routed, "acme", "d1", 2)
    assert list(collections.by_name) == ["Chunk"]
    stored = collections.by_name["Chunk"].chunks["acme"]
    assert {c.model for c in stored.values()} == {OLD} and texts.calls == []
    hits = await routed.search("acme", StoreQuery(SearchMode.VECTOR, 5, vector=[1.0, 1.0]))
    assert sorted(h.chunk_id for h in hits) == sorted(stored)


async def test_during_a_build_writes_reach_both_collections_with_each_models_vectors(world):
    collections, states, texts, routed, _ = world
    target = ModelCollection(NEW, 3, "Chunk_new")
    states.state = replace(states.state, target=target, phase=Phase.BUILDING)
    await index(routed, "acme", "d1", 2)
    old, new = collections.by_name["Chunk"], collections.by_name["Chunk_new"]
    assert sorted(old.chunks["acme"]) == sorted(new.chunks["acme"])
    assert {(c.model, len(c.vector)) for c in old.chunks["acme"].values()} == {(OLD, 2)}
    assert {(c.model, len(c.vector)) for c in new.chunks["acme"].values()} == {(NEW, 3)}
    assert texts.calls == [(NEW, ["acme d1 chunk 0", "acme d1 chunk 1"])]
    # A delete reaches both; searches still read the active (old) collection.
    await Indexer(routed).apply_delete("acme", "d1", 0)
    assert (old.chunks["acme"], new.chunks["acme"]) == ({}, {})
    assert await routed.dimensions_of(NEW) == 3 and await routed.dimensions_of("x") is None


async def test_switch_re_embeds_every_tenant_then_makes_the_new_collection_active(world):
    collections, states, _texts, routed, job = world
    await index(routed, "acme", "d1", 3)
    await index(routed, "globex", "d2", 2)
    started = await job.switch("new")
    assert (started.phase, started.target.collection, started.target.tokenization) == (
        Phase.BUILDING, "Chunk_new_model", "kagome_kr")
    assert collections.recreated == ["Chunk_new_model"]
    await job.wait()
    state = states.state
    assert (state.phase, state.active.model, state.target, state.previous) == (
        Phase.IDLE, NEW, None, ACTIVE)
    assert (state.tenants, state.tenants_done, state.chunks_copied) == (
        ("acme", "globex"), ("acme", "globex"), 5)
    new = collections.by_name["Chunk_new_model"]
    old = collections.by_name["Chunk"]
    for tenant in ("acme", "globex"):
        assert sorted(new.chunks[tenant]) == sorted(old.chunks[tenant])
        assert {(c.model, len(c.vector)) for c in new.chunks[tenant].values()} == {(NEW, 3)}
    hits = await routed.search("acme", StoreQuery(SearchMode.VECTOR, 10, vector=[1.0, 1.0, 1.0]))
    assert {h.chunk_id for h in hits} == set(new.chunks["acme"])
    # Asking for the active model again changes nothing.
    assert (await job.switch(NEW)).active.collection == "Chunk_new_model"


async def test_searches_read_the_old_collection_until_the_switch(world):
    collections, states, texts, routed, job = world
    await index(routed, "acme", "d1", 2)
    texts.gate = asyncio.Event()
    await job.switch("new")
    await asyncio.sleep(0.01)
    q = StoreQuery(SearchMode.VECTOR, 10, vector=[1.0, 1.0])
    during = await routed.search("acme", q)
    assert {h.chunk_id for h in during} == set(collections.by_name["Chunk"].chunks["acme"])
    assert (await routed.active_model()).model == OLD and states.state.phase is Phase.BUILDING
    texts.gate.set()
    await job.wait()
    assert (await routed.active_model()).model == NEW


async def test_a_crash_resumes_at_the_first_tenant_not_done(world):
    collections, states, texts, routed, job = world
    await index(routed, "acme", "d1", 2)
    await index(routed, "globex", "d2", 2)
    texts.fail_on = "globex"
    await job.switch("new")
    await job.wait()
    failed = states.state
    assert (failed.phase, failed.tenants_done, failed.active.model) == (
        Phase.FAILED, ("acme",), OLD)
    assert "embedding service went away" in failed.error
    texts.fail_on, texts.calls = None, []
    resumed = await job.switch("new")
    assert resumed.phase is Phase.BUILDING and collections.recreated == ["Chunk_new_model"]
    await job.wait()
    assert [t for _, batch in texts.calls for t in batch] == ["globex d2 chunk 0",
                                                              "globex d2 chunk 1"]
    assert (states.state.phase, states.state.active.model, states.state.chunks_copied) == (
        Phase.IDLE, NEW, 4)


async def test_another_replica_takes_over_an_abandoned_build(world):
    _collections, states, _texts, routed, job = world
    await index(routed, "acme", "d1", 2)
    target = ModelCollection(NEW, 3, "Chunk_new_model")
    states.state = replace(states.state, target=target, phase=Phase.BUILDING, owner="dead",
                           heartbeat=0.0)
    assert await job.resume_if_abandoned()
    await job.wait()
    assert states.state.active == target and states.state.owner == "me"
    # A build whose owner still reports progress is left alone.
    states.state = replace(states.state, target=ACTIVE, phase=Phase.BUILDING, owner="alive",
                           heartbeat=job.clock())
    assert not await job.resume_if_abandoned()


async def test_a_delete_during_the_copy_is_not_undone(world):
    collections, _states, texts, routed, job = world
    await index(routed, "acme", "d1", 2)
    await index(routed, "acme", "d2", 1)

    async def delete_d1_meanwhile(batch: Sequence[str]) -> None:
        # The copy has read d1's chunks; the delete lands before it writes them.
        if any("d1" in t for t in batch) and texts.before:
            texts.before.clear()
            await Indexer(routed).apply_delete("acme", "d1", 0)

    texts.before.append(delete_d1_meanwhile)
    await job.switch("new")
    await job.wait()
    new = collections.by_name["Chunk_new_model"].chunks["acme"]
    assert {c.document_id for c in new.values()} == {"d2"}
    assert {c.document_id for c in collections.by_name["Chunk"].chunks["acme"].values()} == {"d2"}


async def test_refusals(world):
    _, states, _, _, job = world
    with pytest.raises(FailedPrecondition) as not_served:
        await job.switch("bert")
    assert not_served.value.reason == "MODEL_NOT_SERVED"
    states.state = replace(states.state, target=ModelCollection("third", 4, "Chunk_third"),
                           phase=Phase.BUILDING)
    job._task = asyncio.create_task(asyncio.sleep(10))  # another build is running here
    try:
        with pytest.raises(FailedPrecondition) as busy:
            await job.switch("new")
        assert busy.value.reason == "REEMBED_IN_PROGRESS"
    finally:
        await job.stop()


async def test_tenant_deletion_covers_every_collection(world):
    collections, _states, _, routed, job = world
    await index(routed, "acme", "d1", 2)
    await job.switch("new")
    await job.wait()
    assert await routed.delete_tenant("acme") == 4  # 2 in the previous, 2 in the active
    assert all("acme" not in s.chunks for s in collections.by_name.values())


class ActiveIs:
    def __init__(self, collection: ModelCollection) -> None:
        self.collection = collection

    async def active_model(self) -> ModelCollection:
        return self.collection


class QueryTexts:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def embed_query(self, text: str, model: str = "") -> list[float]:
        self.calls.append((text, model))
        return [1.0] * DIMS[model]


async def test_queries_are_embedded_with_the_active_model_and_stale_vectors_replaced(store):
    from llmops_kit.errors import InvalidArgument
    from llmops_vectorstore.domain.model import SearchRequest
    from llmops_vectorstore.domain.search import SearchService

    texts = QueryTexts()
    service = SearchService(store, texts, 2, models=ActiveIs(ModelCollection(NEW, 3, "C")))
    plan = await service.plan(SearchRequest(query="hi", mode=SearchMode.VECTOR))
    assert (list(plan.vector), texts.calls) == ([1.0, 1.0, 1.0], [("hi", NEW)])
    # A vector of the model before the switch (named, or of another length) is replaced by
    # the text's embedding with the active model; the active model's own vector is kept.
    for stale in (SearchRequest(query="q2", vector=[0.5, 0.5, 0.5], vector_model=OLD),
                  SearchRequest(query="q3", vector=[0.5, 0.5])):
        assert list((await service.plan(stale)).vector) == [1.0, 1.0, 1.0]
    kept = await service.plan(SearchRequest(query="q4", vector=[0.1, 0.2, 0.3],
                                            vector_model=NEW))
    assert list(kept.vector) == [0.1, 0.2, 0.3]
    assert [t for t, _ in texts.calls] == ["hi", "q2", "q3"]
    with pytest.raises(FailedPrecondition) as named:
        await service.plan(SearchRequest(vector=[0.5, 0.5], vector_model=OLD))
    assert named.value.reason == "EMBEDDING_MODEL_MISMATCH"
    with pytest.raises(InvalidArgument) as unnamed:
        await service.plan(SearchRequest(vector=[0.5, 0.5]))
    assert unnamed.value.reason == "VECTOR_DIMENSION_MISMATCH"


async def test_the_watch_takes_over_once_the_owner_stops_beating_and_beats_in_long_tenants(world):
    _, states, texts, routed, job = world
    await index(routed, "acme", "d1", 7)  # 4 pages of 2
    now = [1000.0]
    job.clock = lambda: now[0]
    job.lease_seconds = 0.03
    target = ModelCollection(NEW, 3, "Chunk_new_model")
    states.state = replace(states.state, target=target, phase=Phase.BUILDING, owner="other",
                           heartbeat=now[0])
    beats: list[float] = []

    async def tick(batch: Sequence[str]) -> None:
        now[0] += 1.0  # every page takes a second: the lease is renewed within the tenant
        beats.append(states.state.heartbeat)

    texts.before.append(tick)
    watch = asyncio.create_task(job.watch())
    try:
        await asyncio.sleep(0.05)
        assert not job.running  # the owner's heartbeat is fresh
        now[0] += 1.0
        await asyncio.sleep(0.05)
        await job.wait()
    finally:
        watch.cancel()
    assert states.state.active == target and states.state.owner == "me"
    assert beats == sorted(beats) and len(set(beats)) >= 3


async def test_the_job_outlives_the_deadline_of_the_request_that_started_it(world):
    _, states, texts, routed, job = world
    await index(routed, "acme", "d1", 2)
    texts.gate = asyncio.Event()
    token = deadline_var.set(time.monotonic() + 0.01)  # the Switch call's gRPC deadline
    try:
        await job.switch("new")
    finally:
        deadline_var.reset(token)
    await asyncio.sleep(0.05)
    texts.gate.set()
    await job.wait()
    assert (states.state.phase, states.state.error, states.state.active.model) == (
        Phase.IDLE, "", NEW)


class MemoryAudit:
    def __init__(self) -> None:
        self.entries: list = []

    async def record(self, entry) -> None:
        self.entries.append(entry)


async def test_a_switch_is_platform_admin_only_and_audited(world):
    from llmops_kit.auth import Principal, Role, acting_as
    from llmops_kit.context import tenant_var
    from llmops_kit.errors import PermissionDenied
    from llmops_vectorstore.api import embedding_admin

    _, _, _, routed, job = world
    await index(routed, "acme", "d1", 1)
    audit = MemoryAudit()
    token = tenant_var.set("acme")
    try:
        with acting_as(Principal("acme", Role.ADMIN, "k-acme")), \
                pytest.raises(PermissionDenied) as denied:
            await embedding_admin.switch(job, "new", audit)
    finally:
        tenant_var.reset(token)
    assert denied.value.reason == "PLATFORM_ADMIN_REQUIRED" and audit.entries == []
    token = tenant_var.set("platform")
    try:
        with acting_as(Principal("platform", Role.ADMIN, "k-root")):
            status = await embedding_admin.switch(job, " new ", audit)
            await job.wait()
            again = await embedding_admin.switch(job, "new", audit)  # already active
    finally:
        tenant_var.reset(token)
    assert (status.phase, status.target.model, again.active.model) == ("building", NEW, NEW)
    [entry] = audit.entries
    assert (entry.action, entry.target, entry.tenant, entry.actor, entry.actor_tenant) == (
        "embedding.switch", NEW, "", "k-root", "platform")
    assert (entry.before["active"], entry.after["target"]) == (OLD, "Chunk_new_model")
