"""Writing chunk vectors and deletes so that replays and reordering end in the right state.

Rules (per tenant and document):
- ChunkVectors for version V is stale, and dropped, when V <= deleted_up_to_version or
  V < latest_version. Otherwise its chunks are upserted (by chunk id, so a replay changes
  nothing); when V is newer than latest_version the older versions' chunks are deleted, and
  only then latest_version = V is recorded. The state is written last, so a crash anywhere
  in between is repaired by the redelivery.
- DocumentDeleted(up_to U) deletes chunks with version <= U (every chunk when U == 0) and
  records deleted_up_to_version = max(old, U) (for U == 0: the latest version known), so a
  late ChunkVectors of a deleted version cannot resurrect it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from enum import Enum

from llmops_kit.errors import InvalidArgument
from llmops_vectorstore.domain.model import DocumentState, VectorBatch
from llmops_vectorstore.ports import ChunkStore


class KeyedLock:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


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
    def __init__(self, store: ChunkStore) -> None:
        self.store = store
        # Vectors and deletes of one document arrive on different topics (maybe at once).
        self._locks = KeyedLock()

    async def apply_vectors(self, tenant: str, batch: VectorBatch) -> IndexResult:
        async with self._locks.hold((tenant, batch.document_id)):
            state = await self.store.get_document(tenant, batch.document_id) or DocumentState(
                batch.document_id
            )
            v = batch.version
            if v <= state.deleted_up_to_version or v < state.latest_version:
                return IndexResult(Outcome.STALE, state)
            await self.store.upsert_chunks(tenant, batch.chunks)
            if v > state.latest_version:
                if v > 1:
                    await self.store.delete_chunks(tenant, batch.document_id, v - 1)
                state = replace(state, latest_version=v)
                await self.store.put_document(tenant, state)
            return IndexResult(Outcome.INDEXED, state)

    async def apply_delete(
        self, tenant: str, document_id: str, up_to_version: int
    ) -> DocumentState:
        async with self._locks.hold((tenant, document_id)):
            old = await self.store.get_document(tenant, document_id) or DocumentState(document_id)
            await self.store.delete_chunks(tenant, document_id, up_to_version or None)
            reach = up_to_version or old.latest_version
            new = replace(old, deleted_up_to_version=max(old.deleted_up_to_version, reach))
            if new != old:
                await self.store.put_document(tenant, new)
            return new
