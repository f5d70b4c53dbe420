"""Stores for every tier of the vector-store's tests.

FakeStore stands in for WeaviateStore in unit tests and is held to the same contract: the
bodies in test_vectorstore_store_contract.py run against both (`any_store`).

Real Weaviate (integration): started by `bash infra/scripts/weaviate.sh start` (the kit's
`weaviate_server` fixture). Unreachable Weaviate fails the tests (never skips). Every session
writes to its own collections (unique names), removed afterwards, so parallel sessions do not
collide.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import pytest
from weaviate.exceptions import WeaviateBaseError

from llmops_vectorstore.adapters.weaviate import WeaviateStore
from llmops_vectorstore.adapters.weaviate_schema import connect
from llmops_vectorstore.domain.model import (
    FIELD_KEYS,
    ChunkRecord,
    DocumentState,
    Hit,
    SearchMode,
    StoreQuery,
    StoreStats,
)
from llmops_vectorstore.ports import ChunkStore
from llmops_vectorstore.settings import LocalWeaviate


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

    async def put_latest_version(self, tenant: str, document_id: str, version: int) -> None:
        self.calls.append("put_latest")
        old = self.documents.setdefault(tenant, {}).get(document_id, DocumentState(document_id))
        self.documents[tenant][document_id] = replace(old, latest_version=version)

    async def put_deleted_up_to(self, tenant: str, document_id: str, version: int) -> None:
        self.calls.append("put_deleted")
        old = self.documents.setdefault(tenant, {}).get(document_id, DocumentState(document_id))
        self.documents[tenant][document_id] = replace(old, deleted_up_to_version=version)

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
        keyword = query.mode is SearchMode.KEYWORD
        return [replace(_hit(r, s), similarity=None if keyword else s)
                for s, r in scored[: query.limit]]

    async def get_chunks(self, tenant: str, chunk_ids: Sequence[str]) -> list[Hit]:
        table = self.chunks.get(tenant, {})
        return [_hit(table[c], 0.0) for c in chunk_ids if c in table]

    async def stats(self, tenant: str) -> StoreStats:
        rows = self.chunks.get(tenant, {}).values()
        return StoreStats(len(rows), len({c.document_id for c in rows}), "fake")

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


def _field(r: ChunkRecord, key: str) -> str | None:
    return str(getattr(r, key)) if key in FIELD_KEYS else r.metadata.get(key)


def _cos(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _hit(r: ChunkRecord, score: float) -> Hit:
    return Hit(r.chunk_id, r.document_id, r.document_version, r.chunk_index, r.text, score,
               r.title, r.source, dict(r.metadata))


def weaviate_backend() -> LocalWeaviate:
    # The settings' defaults: the ports file (or WEAVIATE_PORT / WEAVIATE_GRPC_PORT) and the
    # API key weaviate.sh generated under $LLMOPS_HOME/secrets.
    return LocalWeaviate()


async def open_store(prefix: str) -> WeaviateStore:
    backend = weaviate_backend()
    try:
        client = await connect(backend, timeout_seconds=5)
    except WeaviateBaseError as exc:
        pytest.fail(
            f"Weaviate is not reachable at {backend.host}:{backend.http_port} "
            f"(grpc {backend.grpc_port}): {exc}. Start it: bash infra/scripts/weaviate.sh start",
            pytrace=False,
        )
    suffix = uuid.uuid4().hex[:10]
    store = WeaviateStore(client, f"{prefix}Chunk{suffix}", f"{prefix}Doc{suffix}")
    await store.ensure_schema()
    return store


async def drop_store(store: WeaviateStore) -> None:
    for name in (store.chunks_name, store.documents_name):
        await store.client.collections.delete(name)
    await store.close()


@pytest.fixture(scope="session")
async def weaviate_store(weaviate_server: dict) -> AsyncIterator[WeaviateStore]:
    # weaviate_server (llmops_kit.testing) starts the local server through infra/scripts.
    store = await open_store("Test")
    try:
        yield store
    finally:
        await drop_store(store)


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test: tests share collections but never data."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture(params=[
    pytest.param("fake", marks=pytest.mark.unit),
    pytest.param("weaviate", marks=pytest.mark.integration),
])
def any_store(request: pytest.FixtureRequest) -> ChunkStore:
    """Each store the vector-store runs on: the contract bodies run once per backend."""
    if request.param == "fake":
        return FakeStore()
    store: ChunkStore = request.getfixturevalue("weaviate_store")
    return store
