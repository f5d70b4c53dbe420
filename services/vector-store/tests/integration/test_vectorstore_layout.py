"""The embedding state's first start on a real Weaviate: a store from before per-model
collections keeps serving its chunks, a fresh one gets the configured tokenization."""

from __future__ import annotations

import uuid

import pytest
from weaviate.classes.config import Configure, DataType, Property

from llmops_vectorstore.adapters import weaviate_schema as schema
from llmops_vectorstore.bootstrap import build_collections
from llmops_vectorstore.domain.layout import ModelCollection, Phase
from llmops_vectorstore.domain.model import ChunkRecord
from llmops_vectorstore.settings import Settings

pytestmark = pytest.mark.integration


def names() -> dict[str, str]:
    s = uuid.uuid4().hex[:8]
    return {"collection": f"LayChunk{s}", "documents_collection": f"LayDoc{s}",
            "state_collection": f"LayState{s}"}


async def drop(collections, settings: Settings) -> None:
    for name in (settings.collection, settings.documents_collection, settings.state_collection):
        await collections.client.collections.delete(name)
    await collections.close()


async def test_first_start_records_the_configured_model_and_tokenization(weaviate_server):
    settings = Settings(**names(), embedding_model="m/one", dimensions=4,
                        text_tokenization="kagome_kr")
    collections, states, state = await build_collections(settings)
    try:
        assert state == await states.load()
        assert (state.active, state.target, state.phase) == (
            ModelCollection("m/one", 4, settings.collection, "kagome_kr"), None, Phase.IDLE)
        config = await collections.client.collections.use(settings.collection).config.get()
        text = next(p for p in config.properties if p.name == schema.TEXT)
        assert text.tokenization.value == "kagome_kr"
        # A later start with other settings keeps what the state says.
        _, _, again = await build_collections(
            Settings(**{**names(), "state_collection": settings.state_collection,
                        "collection": settings.collection,
                        "documents_collection": settings.documents_collection},
                     embedding_model="m/two", dimensions=8))
        assert again.active == state.active
    finally:
        await drop(collections, settings)


async def test_a_collection_from_before_gets_the_model_property_and_stays_active(weaviate_server):
    settings = Settings(**names(), text_tokenization="kagome_kr")
    client = await schema.connect(settings.weaviate, 5)
    # A chunk collection as it was before: no embedding_model property.
    await client.collections.create(
        settings.collection, multi_tenancy_config=schema._multi_tenancy(),
        vector_config=Configure.Vectors.self_provided(),
        properties=[Property(name=schema.TEXT, data_type=DataType.TEXT)])
    await client.close()
    collections, _, state = await build_collections(settings)
    try:
        assert (state.active.collection, state.active.tokenization) == (settings.collection,
                                                                       "word")
        # Added at start-up (before any write could auto-create it), filterable as a field.
        config = await collections.client.collections.use(settings.collection).config.get()
        model_prop = next(p for p in config.properties if p.name == schema.EMBEDDING_MODEL)
        assert model_prop.tokenization.value == "field"
        store = collections.store(state.active)
        await store.upsert_chunks("acme", [ChunkRecord(
            "c1", "d1", 1, 0, "hello", [1.0] * 384, model=state.active.model)])
        [hit] = await store.get_chunks("acme", ["c1"])
        assert hit.model == "sentence-transformers/all-MiniLM-L6-v2"
    finally:
        await drop(collections, settings)
