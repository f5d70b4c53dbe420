"""Writing chunk vectors and deletes so that replays, reordering and concurrent replicas
end in the right state.

Vectors (topic chunk-vectors) and deletes (topic document-deleted) of one document arrive on
two streams, consumed by different groups, so two replicas may work on one document at the
same time. No lock spans replicas; instead each half of the per-document state has exactly
one writer stream (both topics are keyed by document, so one consumer of each group owns a
document at a time):
- latest_version (the marker) is written only by apply_vectors;
- deleted_up_to_version (the tombstone) is written only by apply_delete, and it only grows.

apply_vectors(V): read the state; V <= tombstone or V < marker is stale and dropped (after
removing any chunks of V an interrupted earlier attempt left behind). Otherwise upsert the
chunks (by chunk id: a replay changes nothing), then READ THE STATE AGAIN: if a delete now
covers V (or a newer marker appeared), remove what was just written and report STALE. Only
then, for a new version, delete the older versions' chunks and record the marker (last, so a
crash anywhere before is repaired by the redelivery).

apply_delete(U): record the tombstone FIRST (U, or the marker for U == 0 "all versions"),
then delete the chunks with version <= it.

Why no interleaving resurrects a deleted version: the delete's chunk removal follows its
tombstone write, and the vectors' tombstone re-read follows its upsert. Either the re-read
sees the tombstone (the vectors side removes its own chunks) or the tombstone was written
after the re-read, hence after the upsert, so the delete's removal (later still) removes them.
docs/architecture.md ("Vector-store write ordering") has the whole argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

from llmops_kit.errors import InvalidArgument
from llmops_vectorstore.domain.model import DocumentState, VectorBatch
from llmops_vectorstore.ports import ChunkStore


def validate_batch(batch: VectorBatch, dimensions: int) -> None:
    """Refuses a batch that can never be written (the event edge dead-letters it)."""
    if not batch.document_id:
        raise InvalidArgument("MISSING_DOCUMENT", "ChunkVectors has no document_id")
    if batch.version < 1:
        raise InvalidArgument("BAD_VERSION", f"document {batch.document_id}: version must be >= 1")
    if not batch.chunks:
        raise InvalidArgument("EMPTY_CHUNKS", f"document {batch.document_id}: no chunks")
    for chunk in batch.chunks:
        if not chunk.chunk_id:
            raise InvalidArgument(
                "BAD_CHUNK_ID", f"document {batch.document_id}: chunk {chunk.chunk_index} has no id"
            )
        check_vector(chunk.vector, dimensions, f"chunk {chunk.chunk_id}", "BAD_VECTOR")


def check_vector(vector: Sequence[float], dimensions: int, what: str, reason: str) -> None:
    values = list(vector)
    if len(values) != dimensions:
        raise InvalidArgument(
            reason, f"{what}: vector has {len(values)} dimensions, expected {dimensions}"
        )
    if not all(math.isfinite(v) for v in values):
        raise InvalidArgument(reason, f"{what}: vector has NaN or infinite values")
    if not any(values):
        raise InvalidArgument(reason, f"{what}: vector is all zeros (no direction to compare)")


class Outcome(Enum):
    INDEXED = "indexed"
    STALE = "stale"


@dataclass(frozen=True)
class IndexResult:
    outcome: Outcome
    state: DocumentState


class Indexer:
    """Applies vectors and deletes; any number of Indexers (replicas) may share one store."""

    def __init__(self, store: ChunkStore) -> None:
        self.store = store

    async def _state(self, tenant: str, document_id: str) -> DocumentState:
        return await self.store.get_document(tenant, document_id) or DocumentState(document_id)

    async def apply_vectors(self, tenant: str, batch: VectorBatch) -> IndexResult:
        doc, v = batch.document_id, batch.version
        state = await self._state(tenant, doc)
        if v <= state.deleted_up_to_version:
            # A delete covers V. An earlier attempt may have upserted and died before
            # cleaning up (the delete's own removal ran before that upsert): remove it now.
            await self.store.delete_chunks(tenant, doc, v)
            return IndexResult(Outcome.STALE, state)
        if v < state.latest_version:
            return IndexResult(Outcome.STALE, state)
        await self.store.upsert_chunks(tenant, batch.chunks)
        after = await self._state(tenant, doc)
        if v <= after.deleted_up_to_version or v < after.latest_version:
            # A delete of V ran meanwhile (maybe on another replica), or a newer version was
            # recorded (two owners of one partition during a rebalance): undo the upsert.
            await self.store.delete_chunks(tenant, doc, v)
            return IndexResult(Outcome.STALE, after)
        if v > after.latest_version:
            if v > 1:
                await self.store.delete_chunks(tenant, doc, v - 1)
            await self.store.put_latest_version(tenant, doc, v)
            after = replace(after, latest_version=v)
        return IndexResult(Outcome.INDEXED, after)

    async def apply_delete(
        self, tenant: str, document_id: str, up_to_version: int
    ) -> DocumentState:
        old = await self._state(tenant, document_id)
        # 0 means every version: the newest one written so far. A version still being
        # written on another replica is newer than the delete and survives it.
        reach = up_to_version or max(old.latest_version, old.deleted_up_to_version)
        new = replace(old, deleted_up_to_version=max(old.deleted_up_to_version, reach))
        if new.deleted_up_to_version > old.deleted_up_to_version:
            await self.store.put_deleted_up_to(tenant, document_id, new.deleted_up_to_version)
        if reach:
            # Always, even when the tombstone was already there: a redelivered delete
            # finishes the removal a crash interrupted.
            await self.store.delete_chunks(tenant, document_id, reach)
        return new
