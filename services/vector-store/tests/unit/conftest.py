"""In-memory fakes of the vector-store ports (unit tests only)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from llmops_kit.kafka import Batch, Received
from llmops_vectorstore.domain.model import (
    FIELD_KEYS,
    ChunkRecord,
    DocumentState,
    Hit,
    SearchMode,
    StoreQuery,
    StoreStats,
)


class FakeStore:
    """Same contract as WeaviateStore, as plain dicts per tenant."""

    def __init__(self) -> None:
        self.chunks: dict[str, dict[str, ChunkRecord]] = {}
        self.documents: dict[str, dict[str, DocumentState]] = {}
        self.calls: list[str] = []
        self.queries: list[StoreQuery] = []
        self.fail_next_upsert = False

    async def get_document(self, tenant: str, document_id: str) -> DocumentState | None:
        return self.documents.get(tenant, {}).get(document_id)

    async def put_document(self, tenant: str, state: DocumentState) -> None:
        self.calls.append("put_document")
        self.documents.setdefault(tenant, {})[state.document_id] = state

    async def upsert_chunks(self, tenant: str, chunks: Sequence[ChunkRecord]) -> None:
        if self.fail_next_upsert:
            self.fail_next_upsert = False
            raise ConnectionError("weaviate down")
        self.calls.append("upsert")
        for c in chunks:
            self.chunks.setdefault(tenant, {})[c.chunk_id] = c

    async def delete_chunks(self, tenant: str, document_id: str, max_version: int | None) -> int:
        self.calls.append(f"delete<={max_version}")
        table = self.chunks.get(tenant, {})
        doomed = [
            k for k, c in table.items()
            if c.document_id == document_id
            and (max_version is None or c.document_version <= max_version)
        ]
        for k in doomed:
            del table[k]
        return len(doomed)

    async def search(self, tenant: str, query: StoreQuery) -> list[Hit]:
        self.queries.append(query)
        rows = list(self.chunks.get(tenant, {}).values())
        for f in query.filters:
            rows = [r for r in rows if _field(r, f.key) == f.equals]
        if query.mode is SearchMode.KEYWORD:
            scored = [(float(query.text in r.text), r) for r in rows]
        else:
            assert query.vector is not None
            scored = [(_cos(query.vector, r.vector), r) for r in rows]
        scored.sort(key=lambda t: -t[0])
        return [_hit(r, s) for s, r in scored[: query.limit]]

    async def get_chunks(self, tenant: str, chunk_ids: Sequence[str]) -> list[Hit]:
        table = self.chunks.get(tenant, {})
        return [_hit(table[c], 0.0) for c in chunk_ids if c in table]

    async def stats(self, tenant: str) -> StoreStats:
        docs = self.documents.get(tenant, {}).values()
        return StoreStats(len(self.chunks.get(tenant, {})), sum(d.live for d in docs), "fake")

    def versions(self, tenant: str, document_id: str) -> set[int]:
        return {
            c.document_version for c in self.chunks.get(tenant, {}).values()
            if c.document_id == document_id
        }


def _field(r: ChunkRecord, key: str) -> str | None:
    return str(getattr(r, key)) if key in FIELD_KEYS else r.metadata.get(key)


def _cos(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _hit(r: ChunkRecord, score: float) -> Hit:
    return Hit(r.chunk_id, r.document_id, r.document_version, r.chunk_index, r.text, score,
               r.title, r.source, dict(r.metadata))


class FakeEmbedder:
    def __init__(self, dims: int) -> None:
        self.dims = dims
        self.calls: list[str] = []

    async def embed_query(self, text: str) -> list[float]:
        self.calls.append(text)
        return [1.0] + [0.0] * (self.dims - 1)


@dataclass
class FakeBus:
    """Stands in for EventBus where a Batch dead-letters and a handler publishes."""

    published: list[tuple[Any, bytes, Any]] = field(default_factory=list)
    dead: list[tuple[Any, str]] = field(default_factory=list)

    async def publish_many(self, event_type: Any, events: Sequence[tuple[bytes, Any]]) -> None:
        self.published.extend((event_type, k, e) for k, e in events)

    async def dead_letter(self, record: Any, error: Any, group: str) -> None:
        self.dead.append((record, error.reason))


def make_batch(bus: FakeBus, events: Sequence[Any]) -> Batch[Any]:
    items = [
        Received(e, SimpleNamespace(topic="t", partition=0, offset=i, key=None, value=b"",
                                    headers=()))
        for i, e in enumerate(events)
    ]
    return Batch(items, bus, "test-group")  # type: ignore[arg-type]


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder(4)


@pytest.fixture
def batch_of(bus: FakeBus) -> Any:
    """batch_of([event, ...]) -> a kit Batch whose dead-letters land in the fake bus."""
    return lambda events: make_batch(bus, events)
