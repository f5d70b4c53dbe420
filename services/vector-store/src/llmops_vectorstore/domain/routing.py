"""The ChunkStore the indexer and searches use, routed over the per-model collections.

- Reads (search, get_chunks, stats) go to the active collection.
- Chunk writes and deletes go to every write target (active, and the collection a re-embed
  is building). Vectors made by another model than a target's are re-embedded for it
  through the embedding service, so each collection only ever holds its own model's vectors.
- Document state (versions, tombstones) is one record per document, shared by all
  collections: the ordering rules of domain/indexing.py hold for every collection at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from llmops_vectorstore.domain.layout import EmbeddingState, LayoutCache, ModelCollection
from llmops_vectorstore.domain.model import ChunkRecord, DocumentState, Hit, StoreQuery, StoreStats
from llmops_vectorstore.ports import ChunkStore, CollectionStores, TextEmbedder

log = logging.getLogger(__name__)


async def vectors_for(
    target: ModelCollection, chunks: Sequence[ChunkRecord], active_model: str,
    embedder: TextEmbedder,
) -> list[ChunkRecord]:
    """The chunks with vectors of the target's model: as they are when that model made
    them (a chunk without a model is the active model's), re-embedded otherwise."""
    if all((c.model or active_model) == target.model for c in chunks):
        return [c if c.model else replace(c, model=target.model) for c in chunks]
    vectors = await embedder.embed_texts([c.text for c in chunks], target.model)
    return [replace(c, vector=v, model=target.model) for c, v in zip(chunks, vectors, strict=True)]


class RoutedStore:
    def __init__(
        self, stores: CollectionStores, layout: LayoutCache, embedder: TextEmbedder
    ) -> None:
        self.stores = stores
        self.layout = layout
        self.embedder = embedder

    async def _state(self) -> EmbeddingState:
        return await self.layout.current()

    async def _active(self) -> ChunkStore:
        return self.stores.store((await self._state()).active)

    async def active_model(self) -> ModelCollection:
        return (await self._state()).active

    async def dimensions_of(self, model: str) -> int | None:
        return (await self._state()).dimensions_of(model)

    # ---------------------------------------------------------------- document state

    async def get_document(self, tenant: str, document_id: str) -> DocumentState | None:
        return await (await self._active()).get_document(tenant, document_id)

    async def put_latest_version(self, tenant: str, document_id: str, version: int) -> None:
        await (await self._active()).put_latest_version(tenant, document_id, version)

    async def put_deleted_up_to(self, tenant: str, document_id: str, version: int) -> None:
        await (await self._active()).put_deleted_up_to(tenant, document_id, version)

    # ---------------------------------------------------------------- chunk writes

    async def upsert_chunks(self, tenant: str, chunks: Sequence[ChunkRecord]) -> None:
        if not chunks:
            return
        state = await self._state()
        for target in state.write_targets():
            records = await vectors_for(target, chunks, state.active.model, self.embedder)
            if records[0].vector is not chunks[0].vector:
                log.info("re-embedded %d chunks for %s", len(records), target.collection)
            await self.stores.ensure(target)
            await self.stores.store(target).upsert_chunks(tenant, records)

    async def delete_chunks(
        self, tenant: str, document_id: str, max_version: int | None
    ) -> int:
        removed = 0
        for n, target in enumerate((await self._state()).write_targets()):
            await self.stores.ensure(target)
            count = await self.stores.store(target).delete_chunks(tenant, document_id, max_version)
            removed += count if n == 0 else 0  # the active collection's count is the answer
        return removed

    # ---------------------------------------------------------------- reads

    async def search(self, tenant: str, query: StoreQuery) -> list[Hit]:
        return await (await self._active()).search(tenant, query)

    async def get_chunks(self, tenant: str, chunk_ids: Sequence[str]) -> list[Hit]:
        return await (await self._active()).get_chunks(tenant, chunk_ids)

    async def stats(self, tenant: str) -> StoreStats:
        return await (await self._active()).stats(tenant)

    # ---------------------------------------------------------------- tenants

    async def delete_tenant(self, tenant: str) -> int:
        return await self.stores.delete_tenant((await self._state()).collections(), tenant)

    async def forget_tenant(self, tenant: str) -> int:
        return await self.stores.forget_tenant((await self._state()).collections(), tenant)
