"""Weaviate connection, collection definitions and the names/ids the store derives.

Two multi-tenant collections, one Weaviate tenant per platform tenant:
- chunks (default "LlmopsChunk"): one object per chunk, uuid = chunk id, self-provided
  vectors (cosine). `text` is BM25-searchable; `document_id`, `source`, `title` and the
  `meta_kv` ("key=value") array are exact-match filterable (field tokenization);
  `metadata_json` keeps the metadata map for display only (not indexed).
- documents (default "LlmopsDocument"): two objects per document with the version state
  that orders replacements and deletes (see domain/indexing.py): the marker
  (latest_version, written by the vectors stream) and the tombstone (deleted_up_to_version,
  written by the deletes stream). No vectors.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import weaviate
from weaviate.classes.config import (
    Configure,
    DataType,
    MultiTenancyConfigCreate,
    Property,
    Tokenization,
    VectorDistances,
)
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateBaseError

from llmops_vectorstore.settings import LocalWeaviate, RemoteWeaviate

log = logging.getLogger(__name__)

# Weaviate tenant names: ^[A-Za-z0-9_-]{1,64}$. Other platform tenant ids are hashed.
_TENANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CHUNK_UUID_NAMESPACE = uuid.UUID("0b7f6f0e-54b5-4d62-8f5c-2f3a4c1a9e77")
_DOCUMENT_UUID_NAMESPACE = uuid.UUID("a3c4f1d2-8e6b-4b1f-9d2e-7c5a1b0e3f48")
_TOMBSTONE_UUID_NAMESPACE = uuid.UUID("5e0c2b7a-91d4-4f38-a6e1-3b8d7c2f4a90")

TEXT = "text"
CHUNK_ID = "chunk_id"
DOCUMENT_ID = "document_id"
DOCUMENT_VERSION = "document_version"
CHUNK_INDEX = "chunk_index"
TITLE = "title"
SOURCE = "source"
METADATA_JSON = "metadata_json"
META_KV = "meta_kv"
# The embedding model that made the object's vector (one model per collection; kept on every
# object so a vector always says where it came from).
EMBEDDING_MODEL = "embedding_model"
CHUNK_PROPERTIES = [
    TEXT, CHUNK_ID, DOCUMENT_ID, DOCUMENT_VERSION, CHUNK_INDEX, TITLE, SOURCE, METADATA_JSON,
    EMBEDDING_MODEL,
]

LATEST_VERSION = "latest_version"
DELETED_UP_TO_VERSION = "deleted_up_to_version"


def tenant_name(tenant: str) -> str:
    """The Weaviate tenant of a platform tenant (stable, valid for Weaviate)."""
    if _TENANT_NAME.fullmatch(tenant):
        return tenant
    return "h-" + hashlib.sha256(tenant.encode()).hexdigest()[:40]


def chunk_uuid(chunk_id: str) -> uuid.UUID:
    """Chunk ids are UUIDs already; anything else maps to a stable UUID of itself."""
    try:
        return uuid.UUID(chunk_id)
    except ValueError:
        return uuid.uuid5(_CHUNK_UUID_NAMESPACE, chunk_id)


def document_uuid(document_id: str) -> uuid.UUID:
    """The document's marker object (latest_version)."""
    return uuid.uuid5(_DOCUMENT_UUID_NAMESPACE, document_id)


def tombstone_uuid(document_id: str) -> uuid.UUID:
    """The document's tombstone object (deleted_up_to_version)."""
    return uuid.uuid5(_TOMBSTONE_UUID_NAMESPACE, document_id)


def _exact(name: str, data_type: DataType = DataType.TEXT) -> Property:
    return Property(
        name=name, data_type=data_type, tokenization=Tokenization.FIELD,
        index_searchable=False, index_filterable=True,
    )


def _int(name: str, range_filters: bool = False) -> Property:
    return Property(
        name=name, data_type=DataType.INT, index_filterable=True, index_range_filters=range_filters
    )


def _multi_tenancy() -> MultiTenancyConfigCreate:
    # Tenants are also created explicitly (reads need them); auto-creation covers races.
    return Configure.multi_tenancy(
        enabled=True, auto_tenant_creation=True, auto_tenant_activation=True
    )


def text_tokenization(name: str) -> Tokenization:
    """The Tokenization named by the settings ("word", "kagome_kr", ...)."""
    try:
        return Tokenization(name)
    except ValueError:
        known = ", ".join(t.value for t in Tokenization)
        raise ValueError(f"unknown text tokenization {name!r}; known: {known}") from None


async def create_chunk_collection(
    client: weaviate.WeaviateAsyncClient, name: str, tokenization: str = "word"
) -> None:
    # kagome_kr (Korean morphemes) needs ENABLE_TOKENIZER_KAGOME_KR=true on the server.
    await client.collections.create(
        name,
        description="LLMOps chunks with their embeddings, one tenant per platform tenant",
        multi_tenancy_config=_multi_tenancy(),
        vector_config=Configure.Vectors.self_provided(
            vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)
        ),
        inverted_index_config=Configure.inverted_index(index_null_state=False),
        properties=[
            Property(
                name=TEXT, data_type=DataType.TEXT, tokenization=text_tokenization(tokenization),
                index_searchable=True, index_filterable=False,
            ),
            _exact(CHUNK_ID),
            _exact(DOCUMENT_ID),
            _int(DOCUMENT_VERSION, range_filters=True),
            _int(CHUNK_INDEX),
            _exact(TITLE),
            _exact(SOURCE),
            _exact(META_KV, DataType.TEXT_ARRAY),
            Property(
                name=METADATA_JSON, data_type=DataType.TEXT,
                index_searchable=False, index_filterable=False,
            ),
            _exact(EMBEDDING_MODEL),
        ],
    )


async def ensure_model_property(client: weaviate.WeaviateAsyncClient, name: str) -> None:
    """Adds `embedding_model` to a chunk collection created before it existed."""
    collection = client.collections.use(name)
    config = await collection.config.get()
    if all(p.name != EMBEDDING_MODEL for p in config.properties):
        await collection.config.add_property(_exact(EMBEDDING_MODEL))
        log.info("added %s to collection %s", EMBEDDING_MODEL, name)


async def create_document_collection(client: weaviate.WeaviateAsyncClient, name: str) -> None:
    await client.collections.create(
        name,
        description="LLMOps per-document version state (orders replacements and deletes)",
        multi_tenancy_config=_multi_tenancy(),
        # Explicitly vector-less: a server whose default vectorizer is set must not embed these.
        vector_config=Configure.Vectors.self_provided(),
        properties=[
            _exact(DOCUMENT_ID),
            _int(LATEST_VERSION),
            _int(DELETED_UP_TO_VERSION),
        ],
    )


CreateCollection = Callable[[weaviate.WeaviateAsyncClient, str], Awaitable[None]]


async def ensure_collection(
    client: weaviate.WeaviateAsyncClient, name: str, create: CreateCollection
) -> None:
    """Creates the collection once; another replica creating it first is fine."""
    if await client.collections.exists(name):
        return
    try:
        await create(client, name)
        log.info("created Weaviate collection %s", name)
    except UnexpectedStatusCodeError as exc:
        if not await client.collections.exists(name):
            raise
        log.info("collection %s was created concurrently (%s)", name, exc.status_code)


class WeaviateAuthError(WeaviateBaseError):
    """Weaviate refused the credentials (or their absence)."""


def _key(backend: LocalWeaviate | RemoteWeaviate) -> str | None:
    key = backend.credentials() if isinstance(backend, LocalWeaviate) else backend.api_key
    return key.get_secret_value() if key else None


def make_client(backend: LocalWeaviate | RemoteWeaviate) -> weaviate.WeaviateAsyncClient:
    if isinstance(backend, LocalWeaviate):
        return weaviate.use_async_with_local(
            host=backend.host, port=backend.http_port, grpc_port=backend.grpc_port,
            auth_credentials=_key(backend),
        )
    return weaviate.use_async_with_custom(
        http_host=backend.http_host,
        http_port=backend.http_port,
        http_secure=backend.http_secure,
        grpc_host=backend.grpc_host,
        grpc_port=backend.grpc_port,
        grpc_secure=backend.grpc_secure,
        auth_credentials=_key(backend),
    )


async def connect(
    backend: LocalWeaviate | RemoteWeaviate, timeout_seconds: float
) -> weaviate.WeaviateAsyncClient:
    """Connects, retrying while the server is still starting (up to timeout_seconds)."""
    deadline = time.monotonic() + timeout_seconds
    delay = 0.5
    while True:
        client = make_client(backend)
        try:
            await client.connect()
            return client
        except WeaviateBaseError as exc:
            await client.close()
            if isinstance(exc, UnexpectedStatusCodeError) and exc.status_code in (401, 403):
                # A missing or wrong API key does not heal by waiting.
                raise WeaviateAuthError(
                    f"Weaviate refused the connection ({exc.status_code}): "
                    + ("no API key" if _key(backend) is None else "wrong API key")
                    + " (LLMOPS_VECTORSTORE_WEAVIATE__API_KEY or __API_KEY_FILE)"
                ) from None
            if time.monotonic() + delay > deadline:
                raise
            log.warning("Weaviate not reachable yet (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
