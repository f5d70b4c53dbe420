"""Real Weaviate for integration tests: started by `bash infra/scripts/weaviate.sh start`
(the kit's `weaviate_server` fixture).

Unreachable Weaviate fails the tests (never skips). Every session writes to its own
collections (unique names), removed afterwards, so parallel sessions do not collide.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from weaviate.exceptions import WeaviateBaseError

from llmops_vectorstore.adapters.weaviate import WeaviateStore
from llmops_vectorstore.adapters.weaviate_schema import connect
from llmops_vectorstore.settings import LocalWeaviate


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
