"""Interfaces the vector-store domain needs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from llmops_vectorstore.domain.layout import ModelCollection
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

    async def embed_query(self, text: str, model: str = "") -> list[float]:
        """`model` "" is the embedding service's default."""
        ...


class ActiveModel(Protocol):
    async def active_model(self) -> ModelCollection:
        """The collection searches read, with its model and dimensions."""
        ...


@runtime_checkable
class TextEmbedder(Protocol):
    """Embeds stored chunk texts with a named model (re-embedding; no caller to act for)."""

    async def embed_texts(self, texts: Sequence[str], model: str) -> list[list[float]]: ...

    async def model_info(self, model: str) -> tuple[str, int]:
        """(full name, dimensions) of a model the embedding service serves."""
        ...


class CollectionStores(Protocol):
    """One ChunkStore per chunk collection; all of them share the documents' state."""

    def store(self, collection: ModelCollection) -> ChunkStore: ...

    async def ensure(self, collection: ModelCollection) -> None:
        """Creates the collection when missing."""
        ...

    async def recreate(self, collection: ModelCollection) -> None:
        """Drops what a collection of this name holds and creates it empty."""
        ...

    async def tenants(self, collection: ModelCollection) -> list[str]:
        """The (Weaviate) tenants that have chunks in the collection."""
        ...

    def chunks(
        self, collection: ModelCollection, tenant: str, page_size: int
    ) -> AsyncIterator[list[ChunkRecord]]:
        """The tenant's chunks page by page (no vectors)."""
        ...

    async def delete_tenant(self, collections: Sequence[ModelCollection], tenant: str) -> int:
        """Removes the tenant from these chunk collections and from the document state."""
        ...

    async def forget_tenant(self, collections: Sequence[ModelCollection], tenant: str) -> int:
        ...
