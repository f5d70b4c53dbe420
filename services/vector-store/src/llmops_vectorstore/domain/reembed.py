"""Switching the embedding model: re-embed every tenant's chunks into the new model's
collection in the background, then make it the active one.

1. switch(model): the embedding service must serve the model (its name and dimensions come
   from there). The target collection is created empty and recorded in the state: from then
   on every chunk write and delete goes to both collections (domain/routing.py).
2. After `settle_seconds` (longer than any replica's state cache), every tenant's chunks are
   read from the active collection page by page, embedded with the new model and written to
   the target. A page's documents are then re-checked like the indexer does: a chunk whose
   version a delete or a newer version has meanwhile superseded is removed again, so the
   copy never resurrects what a concurrent delete removed.
3. Progress (tenants done, chunks copied) is saved after each tenant. A crash resumes at the
   first tenant not done (re-copying one is harmless: writes are upserts by chunk id).
4. When all tenants are done, one state write makes the target active: searches move to the
   new collection (other replicas within their cache time). The old collection is kept as
   `previous` until an operator drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from llmops_kit.context import deadline_var
from llmops_kit.errors import FailedPrecondition
from llmops_vectorstore.domain.layout import (
    EmbeddingState,
    LayoutCache,
    ModelCollection,
    Phase,
    StateStore,
    collection_name,
)
from llmops_vectorstore.domain.model import ChunkRecord
from llmops_vectorstore.ports import ChunkStore, CollectionStores, TextEmbedder

log = logging.getLogger(__name__)


class ReEmbedder:
    def __init__(
        self,
        states: StateStore,
        stores: CollectionStores,
        embedder: TextEmbedder,
        layout: LayoutCache,
        *,
        base_collection: str,
        tokenization: str,
        owner: str,
        page_size: int = 64,
        settle_seconds: float = 5.0,
        lease_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.states = states
        self.stores = stores
        self.embedder = embedder
        self.layout = layout
        self.base_collection = base_collection
        self.tokenization = tokenization
        self.owner = owner
        self.page_size = page_size
        self.settle_seconds = settle_seconds
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._last_beat = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def status(self) -> EmbeddingState:
        state = await self.states.load()
        if state is None:
            raise FailedPrecondition("NO_EMBEDDING_STATE", "the vector-store has no state yet")
        return state

    async def _save(self, state: EmbeddingState) -> EmbeddingState:
        await self.states.save(state)
        self.layout.set(state)
        self._last_beat = max(self._last_beat, state.heartbeat)
        return state

    async def switch(self, model: str) -> EmbeddingState:
        """Starts (or resumes) the re-embed into `model`'s collection; returns the state."""
        async with self._lock:
            name, dimensions = await self.embedder.model_info(model)
            state = await self.status()
            if state.target is not None and state.target.model == name:
                if not self.running:
                    state = await self._save(replace(state, phase=Phase.BUILDING, error=""))
                    self.start()
                return state
            if state.target is not None and state.phase is Phase.BUILDING:
                raise FailedPrecondition(
                    "REEMBED_IN_PROGRESS",
                    f"a re-embed into {state.target.model} is running; wait for it to finish",
                )
            if name == state.active.model:
                return state  # already active: nothing to do
            target = ModelCollection(
                name, dimensions, collection_name(self.base_collection, name), self.tokenization
            )
            if target.collection == state.active.collection:
                raise FailedPrecondition(
                    "COLLECTION_IN_USE", f"{target.collection} is the active collection"
                )
            # Leftovers of an earlier build (e.g. the model was active once) are stale.
            await self.stores.recreate(target)
            now = self.clock()
            state = await self._save(replace(
                state, target=target, phase=Phase.BUILDING, tenants=(), tenants_done=(),
                chunks_copied=0, error="", started_at=now, updated_at=now, owner=self.owner,
                heartbeat=now,
            ))
            log.info("re-embedding into %s (%s, %d dims)", target.collection, name, dimensions)
            self.start()
            return state

    def start(self) -> None:
        if not self.running:
            # The job outlives the request that started it: it keeps the caller's identity
            # (its key is the fallback for calls to the embedding service) but not the
            # request's deadline, which would fail every call after the first seconds.
            context = contextvars.copy_context()
            context.run(deadline_var.set, None)
            self._task = asyncio.create_task(self._run(), name="re-embed", context=context)

    async def resume_if_abandoned(self) -> bool:
        """At start-up: takes over a build whose owner stopped writing progress (crashed)."""
        state = await self.states.load()
        if state is None or state.target is None or state.phase is not Phase.BUILDING:
            return False
        if state.owner != self.owner and self.clock() - state.heartbeat < self.lease_seconds:
            return False
        await self._save(replace(state, owner=self.owner, heartbeat=self.clock()))
        log.info("resuming the re-embed into %s", state.target.collection)
        self.start()
        return True

    async def watch(self) -> None:
        """Until cancelled: takes over a build whose owner stopped writing progress."""
        while True:
            if not self.running:
                try:
                    await self.resume_if_abandoned()
                except Exception:  # Weaviate briefly away: look again next time
                    log.warning("could not check for an abandoned re-embed", exc_info=True)
            await asyncio.sleep(self.lease_seconds / 3)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            await asyncio.sleep(self.settle_seconds)
            await self._build()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recorded for `status`; switching again resumes
            log.exception("re-embed failed")
            state = await self.status()
            await self._save(replace(state, phase=Phase.FAILED, error=_brief(exc),
                                     updated_at=self.clock()))

    async def _build(self) -> None:
        state = await self.status()
        if state.target is None:
            return
        target = state.target
        await self.stores.ensure(target)
        if not state.tenants:
            tenants = tuple(sorted(await self.stores.tenants(state.active)))
            state = await self._save(replace(state, tenants=tenants, updated_at=self.clock()))
        for tenant in state.tenants:
            if tenant in state.tenants_done:
                continue
            copied = await self._copy_tenant(state.active, target, tenant)
            state = await self.status()
            now = self.clock()
            state = await self._save(replace(
                state, tenants_done=(*state.tenants_done, tenant),
                chunks_copied=state.chunks_copied + copied, updated_at=now, heartbeat=now,
            ))
            log.info("re-embedded tenant %d/%d (%d chunks)", len(state.tenants_done),
                     len(state.tenants), copied)
        now = self.clock()
        await self._save(replace(
            state, active=target, target=None, previous=state.active, phase=Phase.IDLE,
            switched_at=now, updated_at=now, heartbeat=now,
        ))
        log.info("switched searches to %s (%s)", target.collection, target.model)

    async def _copy_tenant(
        self, source: ModelCollection, target: ModelCollection, tenant: str
    ) -> int:
        dst = self.stores.store(target)
        copied = 0
        async for page in self.stores.chunks(source, tenant, self.page_size):
            if not page:
                continue
            vectors = await self.embedder.embed_texts([c.text for c in page], target.model)
            records = [
                replace(c, vector=v, model=target.model)
                for c, v in zip(page, vectors, strict=True)
            ]
            await dst.upsert_chunks(tenant, records)
            await self._drop_superseded(dst, tenant, records)
            copied += len(records)
            await self._beat()
        return copied

    async def _beat(self) -> None:
        """Renews the lease within a long tenant (other replicas wait while it is fresh)."""
        now = self.clock()
        if now - self._last_beat > self.lease_seconds / 4:
            current = await self.status()
            await self._save(replace(current, heartbeat=now, owner=self.owner))

    @staticmethod
    async def _drop_superseded(dst: ChunkStore, tenant: str, records: list[ChunkRecord]) -> None:
        for document_id, version in sorted({(c.document_id, c.document_version) for c in records}):
            doc = await dst.get_document(tenant, document_id)
            if doc is None:
                continue  # chunks ahead of their marker: the indexer is writing them (to both)
            if version <= doc.deleted_up_to_version or version < doc.latest_version:
                await dst.delete_chunks(tenant, document_id, version)


def _brief(exc: BaseException) -> str:
    reason = getattr(exc, "reason", "")
    text = f"{reason}: {exc}" if reason else f"{type(exc).__name__}: {exc}"
    return text[:500]
