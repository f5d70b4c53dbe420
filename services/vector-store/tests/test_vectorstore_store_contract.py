"""The ChunkStore contract: every body runs on the FakeStore (unit) and on Weaviate (integration).

The interleaving tests run two Indexers (two replicas) over one store and force every order
of their store calls: a delete and a late ChunkVectors of one document must end right in all
of them.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest

from llmops_vectorstore.domain.indexing import Indexer, Outcome
from llmops_vectorstore.domain.model import (
    ChunkRecord,
    DocumentState,
    Filter,
    Hit,
    SearchMode,
    StoreQuery,
    VectorBatch,
)
from llmops_vectorstore.ports import ChunkStore

DIMS = 8
T = TypeVar("T")


def unit(*components: float) -> list[float]:
    v = list(components) + [0.0] * (DIMS - len(components))
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def batch(doc: str, version: int, n: int = 3, meta: dict[str, str] | None = None) -> VectorBatch:
    chunks = [
        ChunkRecord(
            chunk_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{doc}/{version}/{i}")),
            document_id=doc, document_version=version, chunk_index=i,
            text=f"{doc} version {version} part {i}", vector=unit(1.0, float(i)),
            title="T", source="s", metadata=meta or {"lang": "en"},
        )
        for i in range(n)
    ]
    return VectorBatch(doc, version, chunks, total_chunks=n)


def fresh_tenant() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


async def versions(store: ChunkStore, tenant: str, doc: str) -> list[int]:
    """The version of every chunk of `doc` the store holds (one entry per chunk)."""
    hits = await store.search(tenant, StoreQuery(SearchMode.VECTOR, limit=100, vector=unit(1.0),
                                                 filters=[Filter("document_id", doc)]))
    return sorted(h.document_version for h in hits)


# ---------------------------------------------------------------- the port itself


async def test_upsert_twice_keeps_one_copy(any_store):
    tenant, b = fresh_tenant(), batch("d", 1)
    await any_store.upsert_chunks(tenant, b.chunks)
    await any_store.upsert_chunks(tenant, b.chunks)
    stats = await any_store.stats(tenant)
    assert (stats.chunk_count, stats.document_count) == (3, 1)


async def test_delete_chunks_up_to_a_version_or_all(any_store):
    tenant = fresh_tenant()
    for v in (1, 2, 3):
        await any_store.upsert_chunks(tenant, batch("d", v, n=2).chunks)
    await any_store.upsert_chunks(tenant, batch("other", 1, n=1).chunks)
    assert await any_store.delete_chunks(tenant, "d", 2) == 4
    assert await versions(any_store, tenant, "d") == [3, 3]
    assert await any_store.delete_chunks(tenant, "d", None) == 2
    assert await versions(any_store, tenant, "d") == []
    assert await versions(any_store, tenant, "other") == [1]
    stats = await any_store.stats(tenant)
    assert (stats.chunk_count, stats.document_count) == (1, 1)


async def test_document_count_is_documents_with_chunks(any_store):
    tenant = fresh_tenant()
    chunks = [c for i in range(150) for c in batch(f"d{i}", 1, n=2).chunks]
    await any_store.upsert_chunks(tenant, chunks)
    await any_store.put_latest_version(tenant, "d0", 1)
    await any_store.put_deleted_up_to(tenant, "d0", 1)
    await any_store.delete_chunks(tenant, "d0", 1)
    stats = await any_store.stats(tenant)
    assert (stats.chunk_count, stats.document_count) == (298, 149)


async def test_marker_and_tombstone_never_overwrite_each_other(any_store):
    tenant = fresh_tenant()
    assert await any_store.get_document(tenant, "d") is None
    await any_store.put_latest_version(tenant, "d", 3)
    await any_store.put_deleted_up_to(tenant, "d", 2)
    await any_store.put_latest_version(tenant, "d", 4)
    assert await any_store.get_document(tenant, "d") == DocumentState("d", 4, 2)
    await any_store.put_deleted_up_to(tenant, "d", 4)
    await any_store.put_latest_version(tenant, "d", 4)
    assert await any_store.get_document(tenant, "d") == DocumentState("d", 4, 4)
    # A tombstone alone (a delete that came before any vectors) is a state too.
    await any_store.put_deleted_up_to(tenant, "e", 7)
    assert await any_store.get_document(tenant, "e") == DocumentState("e", 0, 7)


async def test_tenants_see_only_their_own(any_store):
    a, b = fresh_tenant(), fresh_tenant()
    mine = batch("d", 1, meta={"team": "ml"})
    await any_store.upsert_chunks(a, mine.chunks)
    await any_store.put_latest_version(a, "d", 1)
    assert await any_store.get_document(b, "d") is None
    assert await versions(any_store, b, "d") == []
    assert await any_store.get_chunks(b, [mine.chunks[0].chunk_id]) == []
    assert (await any_store.stats(b)).chunk_count == 0
    assert await any_store.delete_chunks(b, "d", None) == 0
    assert await versions(any_store, a, "d") == [1, 1, 1]


async def test_get_chunks_keeps_request_order(any_store):
    tenant, b = fresh_tenant(), batch("d", 1)
    await any_store.upsert_chunks(tenant, b.chunks)
    ids = [b.chunks[2].chunk_id, str(uuid.uuid4()), b.chunks[0].chunk_id]
    hits = await any_store.get_chunks(tenant, ids)
    assert [h.chunk_id for h in hits] == [ids[0], ids[2]]
    assert (hits[0].text, hits[0].chunk_index, dict(hits[0].metadata)) == (
        "d version 1 part 2", 2, {"lang": "en"}
    )


async def test_vector_search_ranks_and_filters(any_store):
    tenant = fresh_tenant()
    await any_store.upsert_chunks(tenant, batch("d1", 1, n=2, meta={"team": "infra"}).chunks)
    await any_store.upsert_chunks(tenant, batch("d2", 1, n=1, meta={"team": "ml"}).chunks)

    async def search(*filters: Filter) -> list[Hit]:
        query = StoreQuery(SearchMode.VECTOR, limit=10, vector=unit(1.0), filters=filters)
        return await any_store.search(tenant, query)

    hits = await search()
    assert hits[0].chunk_index == 0 and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[-1].chunk_index == 1
    assert {h.document_id for h in await search(Filter("team", "ml"))} == {"d2"}
    assert {h.document_id for h in await search(Filter("document_id", "d1"))} == {"d1"}
    assert await search(Filter("team", "none")) == []


async def test_stale_redelivery_removes_what_an_interrupted_attempt_left(any_store):
    # The attempt upserted after the delete removed the chunks, then died before its own
    # clean-up: the redelivery, stale by the tombstone, removes them.
    tenant, b = fresh_tenant(), batch("d", 2)
    await any_store.put_deleted_up_to(tenant, "d", 2)
    await any_store.upsert_chunks(tenant, b.chunks)
    result = await Indexer(any_store).apply_vectors(tenant, b)
    assert result.outcome is Outcome.STALE
    assert await versions(any_store, tenant, "d") == []


# ---------------------------------------------------------------- two replicas, every order


class Schedule:
    """Runs the store calls of replicas "A" and "B" one at a time, in a given order.

    order[i] names the replica whose call goes i-th; once a replica has finished, its
    remaining slots are skipped, and past the end of the order calls run as they come.
    """

    def __init__(self, order: Sequence[str]) -> None:
        self.order = list(order)
        self.pos = 0
        self.finished: set[str] = set()
        self.cond = asyncio.Condition()

    def _ready(self, who: str) -> bool:
        while self.pos < len(self.order) and self.order[self.pos] in self.finished:
            self.pos += 1
        return self.pos >= len(self.order) or self.order[self.pos] == who

    async def step(self, who: str, call: Callable[[], Awaitable[T]]) -> T:
        async with self.cond:
            await self.cond.wait_for(lambda: self._ready(who))
        try:
            return await call()
        finally:
            async with self.cond:
                self.pos += 1
                self.cond.notify_all()

    async def run(self, who: str, work: Awaitable[T]) -> T:
        try:
            return await work
        finally:
            async with self.cond:
                self.finished.add(who)
                self.cond.notify_all()


class Replica:
    """The store as one replica sees it: each call waits for its turn in the schedule."""

    def __init__(self, store: ChunkStore, schedule: Schedule, who: str) -> None:
        self.store, self.schedule, self.who = store, schedule, who

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        async def stepped(*args: Any) -> Any:
            return await self.schedule.step(self.who, lambda: method(*args))

        return stepped


def orders(a_calls: int, b_calls: int) -> list[tuple[str, ...]]:
    n = a_calls + b_calls
    return [
        tuple("B" if i in b_slots else "A" for i in range(n))
        for b_slots in itertools.combinations(range(n), b_calls)
    ]


# apply_vectors makes at most 5 store calls, apply_delete 3: C(8, 3) = 56 orders.
ORDERS = orders(5, 3)


async def race(
    store: ChunkStore, tenant: str, order: Sequence[str], vectors: VectorBatch, up_to: int
) -> Outcome:
    schedule = Schedule(order)
    a = Indexer(Replica(store, schedule, "A"))  # type: ignore[arg-type]
    b = Indexer(Replica(store, schedule, "B"))  # type: ignore[arg-type]
    result, _ = await asyncio.gather(
        schedule.run("A", a.apply_vectors(tenant, vectors)),
        schedule.run("B", b.apply_delete(tenant, vectors.document_id, up_to)),
    )
    return result.outcome


async def assert_consistent(store: ChunkStore, tenant: str, doc: str, size: int) -> DocumentState:
    """Chunks exist iff the marker is above the tombstone, and then exactly the marker's."""
    state = await store.get_document(tenant, doc)
    assert state is not None
    expected = [state.latest_version] * size if state.live else []
    assert await versions(store, tenant, doc) == expected, state
    return state


@pytest.mark.parametrize(
    ("before", "vectors_version", "up_to", "live_after"),
    [
        (0, 1, 1, False),  # first version vs its delete
        (1, 2, 2, False),  # new version vs a delete that covers it
        (1, 2, 1, True),   # new version vs a delete of the old one only
        (1, 2, 0, None),   # new version vs "delete all": either order is a right end
    ],
    ids=["first-vs-delete", "new-vs-delete-it", "new-vs-delete-old", "new-vs-delete-all"],
)
async def test_delete_and_late_vectors_end_right_in_every_order(
    any_store, before, vectors_version, up_to, live_after
):
    for order in ORDERS:
        tenant = fresh_tenant()
        if before:
            await Indexer(any_store).apply_vectors(tenant, batch("d", before))
        outcome = await race(any_store, tenant, order, batch("d", vectors_version), up_to)
        state = await assert_consistent(any_store, tenant, "d", 3)
        if live_after is not None:
            assert state.live is live_after, (order, state)
        if state.live:
            # (Not live: INDEXED is right too when the delete came after the whole write.)
            assert outcome is Outcome.INDEXED, order
        assert state.deleted_up_to_version >= (up_to or before), (order, state)
        # A redelivery of the same vectors on either replica changes nothing.
        await Indexer(any_store).apply_vectors(tenant, batch("d", vectors_version))
        assert await assert_consistent(any_store, tenant, "d", 3) == state, order


async def test_vector_hits_carry_their_cosine_to_the_query(any_store):
    tenant = fresh_tenant()
    await any_store.upsert_chunks(tenant, batch("d1", 1, n=2).chunks)
    query = unit(1.0)
    hits = await any_store.search(tenant, StoreQuery(SearchMode.VECTOR, limit=5, vector=query))
    # Chunk i's vector is unit(1, i): cosine 1 for chunk 0, 1/sqrt(2) for chunk 1.
    assert [h.chunk_index for h in hits] == [0, 1]
    assert [h.similarity for h in hits] == [pytest.approx(1.0, abs=1e-5),
                                            pytest.approx(1 / math.sqrt(2), abs=1e-5)]
    keyword = await any_store.search(tenant, StoreQuery(SearchMode.KEYWORD, limit=5,
                                                        text="part"))
    assert keyword and all(h.similarity is None for h in keyword)
