"""Lifecycle rules of the Indexer: idempotency, replacement, staleness, deletes."""

from __future__ import annotations

import pytest

from llmops_kit.errors import InvalidArgument
from llmops_vectorstore.domain.indexing import (
    Indexer,
    Outcome,
    validate_batch,
)
from llmops_vectorstore.domain.model import ChunkRecord, DocumentState, VectorBatch

pytestmark = pytest.mark.unit

DIMS = 4


def batch(doc: str, version: int, n: int = 2, start: int = 0) -> VectorBatch:
    chunks = [
        ChunkRecord(
            chunk_id=f"{doc}-v{version}-{i}", document_id=doc, document_version=version,
            chunk_index=i, text=f"{doc} v{version} chunk {i}", vector=[1.0, 0.0, 0.0, float(i)],
        )
        for i in range(start, start + n)
    ]
    return VectorBatch(document_id=doc, version=version, chunks=chunks, total_chunks=n)


async def test_replay_is_idempotent(store):
    indexer = Indexer(store)
    first = await indexer.apply_vectors("acme", batch("d", 1, 3))
    again = await indexer.apply_vectors("acme", batch("d", 1, 3))
    assert first.outcome is again.outcome is Outcome.INDEXED
    assert len(store.chunks["acme"]) == 3
    assert store.documents["acme"]["d"] == DocumentState("d", latest_version=1)


async def test_batches_of_one_version_accumulate(store):
    indexer = Indexer(store)
    await indexer.apply_vectors("acme", batch("d", 1, 2, start=0))
    await indexer.apply_vectors("acme", batch("d", 1, 2, start=2))
    assert len(store.chunks["acme"]) == 4
    # The second batch of the same version neither deletes nor rewrites the marker.
    assert store.calls.count("put_latest") == 1


async def test_new_version_replaces_older_chunks(store):
    indexer = Indexer(store)
    await indexer.apply_vectors("acme", batch("d", 1, 3))
    result = await indexer.apply_vectors("acme", batch("d", 2, 1))
    assert result.outcome is Outcome.INDEXED
    assert store.versions("acme", "d") == {2}
    assert len(store.chunks["acme"]) == 1
    # Write first, then remove the old version, then record the marker (crash-safe order).
    assert store.calls[-3:] == ["upsert", "delete<=1", "put_latest"]


async def test_older_version_after_newer_is_dropped(store):
    indexer = Indexer(store)
    await indexer.apply_vectors("acme", batch("d", 3))
    result = await indexer.apply_vectors("acme", batch("d", 2))
    assert result.outcome is Outcome.STALE
    assert store.versions("acme", "d") == {3}


async def test_delete_all_then_late_vectors_do_not_resurrect(store):
    indexer = Indexer(store)
    await indexer.apply_vectors("acme", batch("d", 2))
    state = await indexer.apply_delete("acme", "d", 0)
    assert state.deleted_up_to_version == 2 and not state.live
    assert store.versions("acme", "d") == set()
    late = await indexer.apply_vectors("acme", batch("d", 2))
    assert late.outcome is Outcome.STALE
    assert store.versions("acme", "d") == set()
    # A later version (re-submission after delete) is accepted.
    fresh = await indexer.apply_vectors("acme", batch("d", 3))
    assert fresh.outcome is Outcome.INDEXED and fresh.state.live


async def test_delete_up_to_version_keeps_newer(store):
    indexer = Indexer(store)
    await indexer.apply_vectors("acme", batch("d", 1))
    # Delete of v1 arrives after v2 was written (two topics, no order between them).
    await indexer.apply_vectors("acme", batch("d", 2))
    state = await indexer.apply_delete("acme", "d", 1)
    assert store.versions("acme", "d") == {2}
    assert state == DocumentState("d", latest_version=2, deleted_up_to_version=1)
    assert state.live


async def test_delete_before_vectors_blocks_that_version(store):
    indexer = Indexer(store)
    await indexer.apply_delete("acme", "d", 4)
    assert (await indexer.apply_vectors("acme", batch("d", 4))).outcome is Outcome.STALE
    assert (await indexer.apply_vectors("acme", batch("d", 5))).outcome is Outcome.INDEXED


async def test_delete_of_unknown_document_writes_nothing(store):
    await Indexer(store).apply_delete("acme", "ghost", 0)
    assert store.calls == []


async def test_delete_writes_the_tombstone_before_removing_chunks(store):
    indexer = Indexer(store)
    await indexer.apply_vectors("acme", batch("d", 2))
    store.calls.clear()
    await indexer.apply_delete("acme", "d", 2)
    assert store.calls == ["put_deleted", "delete<=2"]
    # A redelivered delete writes no tombstone again but still removes chunks.
    store.calls.clear()
    await indexer.apply_delete("acme", "d", 2)
    assert store.calls == ["delete<=2"]


async def test_vectors_undo_their_upsert_when_a_delete_lands_meanwhile(store):
    class DeleteDuringUpsert:
        """The delete (another replica) runs right after this replica's upsert."""

        def __getattr__(self, name):
            return getattr(store, name)

        async def upsert_chunks(self, tenant, chunks):
            await store.upsert_chunks(tenant, chunks)
            await Indexer(store).apply_delete(tenant, "d", 1)

    result = await Indexer(DeleteDuringUpsert()).apply_vectors("acme", batch("d", 1))
    assert result.outcome is Outcome.STALE
    assert result.state == DocumentState("d", latest_version=0, deleted_up_to_version=1)
    assert store.versions("acme", "d") == set()
    assert "put_latest" not in store.calls


async def test_tenants_do_not_share_state(store):
    indexer = Indexer(store)
    await indexer.apply_vectors("acme", batch("d", 5))
    result = await indexer.apply_vectors("globex", batch("d", 1))
    assert result.outcome is Outcome.INDEXED
    assert store.versions("globex", "d") == {1}
    assert store.versions("acme", "d") == {5}


async def test_failure_leaves_state_untouched_so_replay_completes(store):
    indexer = Indexer(store)
    await indexer.apply_vectors("acme", batch("d", 1))
    store.fail_next_upsert = True
    with pytest.raises(ConnectionError):
        await indexer.apply_vectors("acme", batch("d", 2))
    assert store.documents["acme"]["d"].latest_version == 1
    await indexer.apply_vectors("acme", batch("d", 2))
    assert store.versions("acme", "d") == {2}


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: VectorBatch("", 1, b.chunks), "MISSING_DOCUMENT"),
        (lambda b: VectorBatch("d", 0, b.chunks), "BAD_VERSION"),
        (lambda b: VectorBatch("d", 1, []), "EMPTY_CHUNKS"),
        (lambda b: VectorBatch("d", 1, [_with(b.chunks[0], vector=[])]), "BAD_VECTOR"),
        (lambda b: VectorBatch("d", 1, [_with(b.chunks[0], vector=[1.0] * 3)]), "BAD_VECTOR"),
        (lambda b: VectorBatch("d", 1, [_with(b.chunks[0], vector=[float("nan")] * 4)]),
         "BAD_VECTOR"),
        (lambda b: VectorBatch("d", 1, [_with(b.chunks[0], vector=[0.0] * 4)]), "BAD_VECTOR"),
        (lambda b: VectorBatch("d", 1, [_with(b.chunks[0], chunk_id="")]), "BAD_CHUNK_ID"),
    ],
)
def test_validate_batch_reasons(mutate, reason):
    with pytest.raises(InvalidArgument) as info:
        validate_batch(mutate(batch("d", 1)), DIMS)
    assert info.value.reason == reason


def _with(chunk: ChunkRecord, **changes) -> ChunkRecord:
    from dataclasses import replace

    return replace(chunk, **changes)


async def test_vectors_undo_their_upsert_when_a_newer_version_lands_meanwhile(store):
    # During a rebalance two replicas may briefly own one partition of chunk-vectors.
    class NewerDuringUpsert:
        def __getattr__(self, name):
            return getattr(store, name)

        async def upsert_chunks(self, tenant, chunks):
            # v3 is written completely after v2 read the state and before v2's upsert lands.
            await Indexer(store).apply_vectors(tenant, batch("d", 3))
            await store.upsert_chunks(tenant, chunks)

    result = await Indexer(NewerDuringUpsert()).apply_vectors("acme", batch("d", 2))
    assert result.outcome is Outcome.STALE
    assert store.versions("acme", "d") == {3}
    assert store.documents["acme"]["d"].latest_version == 3
