"""Interfaces the vector-store domain needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from llmops_vectorstore.domain.model import (
    ChunkRecord,
    DocumentState,
    Hit,
    StoreQuery,
    StoreStats,
)


@runtime_checkable
class ChunkStore(Protocol):
    """Chunks and per-document state, partitioned by tenant: no call crosses tenants."""

    async def get_document(self, tenant: str, document_id: str) -> DocumentState | None:
        """Both halves of the document's state, read together (None: neither was written)."""
        ...

    async def put_latest_version(self, tenant: str, document_id: str, version: int) -> None:
        """Records the newest written version. Only the vectors stream calls this."""
        ...

    async def put_deleted_up_to(self, tenant: str, document_id: str, version: int) -> None:
        """Records the tombstone (every version <= version is deleted). Only the deletes
        stream calls this; the two writers never touch each other's record."""
        ...

    async def upsert_chunks(self, tenant: str, chunks: Sequence[ChunkRecord]) -> None:
        """Writes chunks keyed by chunk_id: writing the same chunk twice keeps one copy."""
        ...

    async def delete_chunks(
        self, tenant: str, document_id: str, max_version: int | None
    ) -> int:
        """Deletes the document's chunks with version <= max_version (all when None)."""
        ...

    async def search(self, tenant: str, query: StoreQuery) -> list[Hit]:
        """Best hits first; a tenant with no data gets []."""
        ...

    async def get_chunks(self, tenant: str, chunk_ids: Sequence[str]) -> list[Hit]: ...

    async def stats(self, tenant: str) -> StoreStats: ...


@runtime_checkable
class QueryEmbedder(Protocol):
    """Turns query text into a vector (the embedding service)."""

    async def embed_query(self, text: str) -> list[float]: ...
