"""The per-model chunk collections on one Weaviate client, and the embedding state record.

The state is one object in a small collection of its own (default "LlmopsEmbeddingState",
not multi-tenant, no vectors): the whole state as JSON in one property, so a switch is one
object write, which every replica reads the same way.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import weaviate
from weaviate.classes.config import Configure, DataType, Property
from weaviate.classes.data import DataObject

from llmops_vectorstore.adapters import weaviate_schema as schema
from llmops_vectorstore.adapters.weaviate import WeaviateStore
from llmops_vectorstore.domain.layout import EmbeddingState, ModelCollection, Phase
from llmops_vectorstore.domain.model import ChunkRecord

log = logging.getLogger(__name__)

_STATE_UUID = uuid.UUID("7c0a3f5e-2b1d-4e8a-9f61-0d4c2b7e5a13")
STATE_JSON = "state_json"


class WeaviateCollections:
    def __init__(self, client: weaviate.WeaviateAsyncClient, documents: str) -> None:
        self.client = client
        self.documents_name = documents
        self._stores: dict[str, WeaviateStore] = {}
        self._ensured: set[str] = set()

    def store(self, collection: ModelCollection) -> WeaviateStore:
        store = self._stores.get(collection.collection)
        if store is None:
            store = WeaviateStore(self.client, collection.collection, self.documents_name,
                                  collection.tokenization)
            self._stores[collection.collection] = store
        return store

    async def ensure(self, collection: ModelCollection) -> None:
        if collection.collection not in self._ensured:
            await self.store(collection).ensure_schema()
            self._ensured.add(collection.collection)

    async def recreate(self, collection: ModelCollection) -> None:
        await self.client.collections.delete(collection.collection)
        self._stores.pop(collection.collection, None)
        self._ensured.discard(collection.collection)
        await self.ensure(collection)

    async def tenants(self, collection: ModelCollection) -> list[str]:
        await self.ensure(collection)
        return await self.store(collection).tenant_names()

    async def chunks(
        self, collection: ModelCollection, tenant: str, page_size: int
    ) -> AsyncIterator[list[ChunkRecord]]:
        async for page in self.store(collection).iterate_chunks(tenant, page_size):
            yield page

    async def delete_tenant(self, collections: Sequence[ModelCollection], tenant: str) -> int:
        removed = 0
        for collection in collections:
            if await self.client.collections.exists(collection.collection):
                removed += await self.store(collection).delete_tenant(tenant)
        return removed

    async def forget_tenant(self, collections: Sequence[ModelCollection], tenant: str) -> int:
        for collection in collections:
            await self.store(collection).forget_tenant(tenant)
        return 0

    async def ready(self) -> bool:
        try:
            return bool(await self.client.is_ready())
        except Exception:
            return False

    async def close(self) -> None:
        await self.client.close()


class WeaviateStateStore:
    def __init__(self, client: weaviate.WeaviateAsyncClient, name: str) -> None:
        self.client = client
        self.name = name

    async def ensure_schema(self) -> None:
        async def create(client: weaviate.WeaviateAsyncClient, name: str) -> None:
            await client.collections.create(
                name,
                description="LLMOps: which chunk collection holds which embedding model",
                vector_config=Configure.Vectors.self_provided(),
                properties=[Property(name=STATE_JSON, data_type=DataType.TEXT,
                                     index_searchable=False, index_filterable=False)],
            )

        await schema.ensure_collection(self.client, self.name, create)

    async def load(self) -> EmbeddingState | None:
        obj = await self.client.collections.use(self.name).query.fetch_object_by_id(_STATE_UUID)
        if obj is None:
            return None
        return state_from_json(str(obj.properties[STATE_JSON]))

    async def save(self, state: EmbeddingState) -> None:
        result = await self.client.collections.use(self.name).data.insert_many([DataObject(
            uuid=_STATE_UUID, properties={STATE_JSON: state_to_json(state)},
        )])
        if result.errors:
            first = next(iter(result.errors.values()))
            raise RuntimeError(f"Weaviate rejected the embedding state: {first.message}")


def state_to_json(state: EmbeddingState) -> str:
    data = dataclasses.asdict(state)
    data["phase"] = state.phase.value
    return json.dumps(data, sort_keys=True)


def state_from_json(raw: str) -> EmbeddingState:
    data: dict[str, Any] = json.loads(raw)

    def collection(value: dict[str, Any] | None) -> ModelCollection | None:
        return ModelCollection(**value) if value else None

    active = collection(data.pop("active"))
    assert active is not None
    return EmbeddingState(
        active=active,
        target=collection(data.pop("target", None)),
        previous=collection(data.pop("previous", None)),
        phase=Phase(data.pop("phase", "idle")),
        tenants=tuple(data.pop("tenants", ())),
        tenants_done=tuple(data.pop("tenants_done", ())),
        **{k: v for k, v in data.items() if k in _SCALARS},
    )


_SCALARS = {"chunks_copied", "error", "started_at", "updated_at", "switched_at", "owner",
            "heartbeat"}
