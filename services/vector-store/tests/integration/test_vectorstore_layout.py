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



async def test_build_creates_the_state_and_wires_the_watch(weaviate_server, tmp_path):
    from llmops_kit.app import Stage
    from llmops_vectorstore.bootstrap import build

    settings = Settings(**names(), auth_database_url=f"sqlite:///{tmp_path}/auth.db",
                        dev_mode=True)
    app = await build(settings)
    client = await schema.connect(settings.weaviate, 5)
    try:
        assert await client.collections.exists(settings.state_collection)
        assert await client.collections.exists(settings.collection)
        [watch] = [h for h in app.hooks if h.stage is Stage.BUS_CLIENT]
        assert watch.start is not None and watch.stop is not None
        await watch.start()  # a fresh store has nothing to resume
        await watch.stop()
    finally:
        for hook in reversed([h for h in app.hooks if h.stage is Stage.RESOURCE]):
            if hook.stop is not None:
                await hook.stop()
        for name in (settings.collection, settings.documents_collection,
                     settings.state_collection):
            await client.collections.delete(name)
        await client.close()
