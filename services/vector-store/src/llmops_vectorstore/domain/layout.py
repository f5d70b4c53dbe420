"""Which chunk collection holds which embedding model, and which one searches read.

One chunk collection per embedding model: a vector is only comparable with vectors of the
model that made it. The state (one record, shared by every replica through the store) names
the active collection (searches) and, while a re-embed runs, the target (being built).
Writes go to both, so nothing written during a re-embed is missing after the switch.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Phase(StrEnum):
    IDLE = "idle"
    BUILDING = "building"
    FAILED = "failed"


@dataclass(frozen=True)
class ModelCollection:
    model: str
    dimensions: int
    collection: str
    # The text property's tokenization (BM25), fixed when the collection is created.
    tokenization: str = "word"


@dataclass(frozen=True)
class EmbeddingState:
    active: ModelCollection
    target: ModelCollection | None = None
    phase: Phase = Phase.IDLE
    # Weaviate tenant names, in the order they are copied.
    tenants: tuple[str, ...] = ()
    tenants_done: tuple[str, ...] = ()
    chunks_copied: int = 0
    error: str = ""
    started_at: float = 0.0
    updated_at: float = 0.0
    switched_at: float = 0.0
    previous: ModelCollection | None = None
    # The replica running the re-embed and when it last wrote progress (its lease).
    owner: str = ""
    heartbeat: float = 0.0

    def write_targets(self) -> list[ModelCollection]:
        """Where chunk writes and deletes go: the active collection and the one being built."""
        if self.target is None:
            return [self.active]
        return [self.active, self.target]

    def collections(self) -> list[ModelCollection]:
        """Every collection that may hold a tenant's chunks (tenant deletion covers them all)."""
        out = self.write_targets()
        if self.previous is not None and self.previous.collection not in {
            c.collection for c in out
        }:
            out.append(self.previous)
        return out

    def dimensions_of(self, model: str) -> int | None:
        """The vector length the collections expect from `model` (None: no collection of it)."""
        for c in self.write_targets():
            if c.model == model:
                return c.dimensions
        return None


def collection_name(base: str, model: str) -> str:
    """The chunk collection of a model: `<base>_<model as letters, digits and _>`.

    Weaviate class names are [A-Z][A-Za-z0-9_]*; `base` starts with a capital already.
    """
    slug = re.sub(r"[^A-Za-z0-9]+", "_", model).strip("_")
    return f"{base}_{slug}"


class StateStore(Protocol):
    async def load(self) -> EmbeddingState | None: ...

    async def save(self, state: EmbeddingState) -> None: ...


class LayoutCache:
    """The state as this replica last read it, re-read at most every `ttl` seconds.

    A switch written by another replica is seen here within `ttl`; the re-embed waits
    longer than that before copying, so by then every replica writes to both collections.
    """

    def __init__(
        self, states: StateStore, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.states = states
        self.ttl = ttl
        self.clock = clock
        self._state: EmbeddingState | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def current(self) -> EmbeddingState:
        if self._state is not None and self.clock() - self._read_at < self.ttl:
            return self._state
        async with self._lock:
            if self._state is None or self.clock() - self._read_at >= self.ttl:
                state = await self.states.load()
                if state is None:
                    raise RuntimeError("no embedding state: the vector-store did not bootstrap it")
                self._state, self._read_at = state, self.clock()
        return self._state

    def set(self, state: EmbeddingState) -> None:
        """What this replica just wrote (its own reads see it at once)."""
        self._state, self._read_at = state, self.clock()
