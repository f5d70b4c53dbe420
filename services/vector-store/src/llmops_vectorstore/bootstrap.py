"""Composition root: Weaviate collections, embedding client, bus and gRPC server, wired together."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from llmops.vectorstore.v1 import vectorstore_pb2_grpc
from llmops_kit import events
from llmops_kit.app import ServiceApp, Stage
from llmops_kit.audit import AuditLog
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus
from llmops_kit.key_resolver import build_resolver
from llmops_kit.settings import DEV_ADMIN_KEY
from llmops_kit.sql_auth import SqlAuditLog, open_engine
from llmops_vectorstore.adapters import weaviate_schema
from llmops_vectorstore.adapters.embedding_client import EmbeddingClient
from llmops_vectorstore.adapters.weaviate_collections import WeaviateCollections, WeaviateStateStore
from llmops_vectorstore.api import events as event_api
from llmops_vectorstore.api import tenants as tenant_api
from llmops_vectorstore.api.grpc import ROLES, SERVICE_FULL_NAME, VectorStoreServicer
from llmops_vectorstore.domain.indexing import Indexer
from llmops_vectorstore.domain.layout import EmbeddingState, LayoutCache, ModelCollection
from llmops_vectorstore.domain.reembed import ReEmbedder
from llmops_vectorstore.domain.routing import RoutedStore
from llmops_vectorstore.domain.search import SearchService
from llmops_vectorstore.settings import Settings

log = logging.getLogger(__name__)

TOPICS = (
    events.CHUNK_VECTORS.topic,
    events.DOCUMENT_DELETED.topic,
    events.CHUNKS_INDEXED.topic,
    events.TENANT_DELETED.topic,
)


def build_grpc(
    settings: Settings, service: SearchService, reembed: ReEmbedder | None = None,
    audit: AuditLog | None = None,
) -> GrpcServer:
    server = GrpcServer(settings.grpc_host, settings.grpc_port, build_resolver(settings))
    server.add(
        vectorstore_pb2_grpc.add_VectorStoreServiceServicer_to_server,
        VectorStoreServicer(service, reembed, audit),
        [SERVICE_FULL_NAME],
        ROLES,
    )
    return server


def background_key(settings: Settings) -> str | None:
    """The key re-embedding calls the embedding service with (no caller to act for): the
    embedding client's own key, else the platform admin key, else the dev admin key."""
    if settings.embedding.api_key is not None:
        return settings.embedding.api_key.get_secret_value()
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    return DEV_ADMIN_KEY if settings.dev_mode else None


async def bootstrap_state(
    settings: Settings, collections: WeaviateCollections, states: WeaviateStateStore
) -> EmbeddingState:
    """The embedding state, written at the very first start from the settings.

    The first model keeps the plain collection name, so a store that predates per-model
    collections goes on serving its chunks (created then with "word" tokenization).
    """
    await states.ensure_schema()
    state = await states.load()
    if state is None:
        existed = await collections.client.collections.exists(settings.collection)
        state = EmbeddingState(
            active=ModelCollection(
                settings.embedding_model, settings.dimensions, settings.collection,
                "word" if existed else settings.text_tokenization,
            ),
            updated_at=time.time(),
        )
        await states.save(state)
        log.info("embedding state created: %s in %s", state.active.model, settings.collection)
    for collection in state.write_targets():
        await collections.ensure(collection)
    return state


async def build_collections(settings: Settings) -> tuple[WeaviateCollections, WeaviateStateStore,
                                                         EmbeddingState]:
    client = await weaviate_schema.connect(
        settings.weaviate, settings.weaviate_connect_timeout_seconds
    )
    collections = WeaviateCollections(client, settings.documents_collection)
    states = WeaviateStateStore(client, settings.state_collection)
    try:
        state = await bootstrap_state(settings, collections, states)
    except Exception:
        await client.close()
        raise
    return collections, states, state


def build_reembed(
    settings: Settings, collections: WeaviateCollections, states: WeaviateStateStore,
    layout: LayoutCache, embedder: EmbeddingClient,
) -> ReEmbedder:
    return ReEmbedder(
        states, collections, embedder, layout,
        base_collection=settings.collection, tokenization=settings.text_tokenization,
        owner=f"{socket.gethostname()}:{os.getpid()}", page_size=settings.reembed_page_size,
        # Longer than any replica caches the state: copying starts once all write to both.
        settle_seconds=2 * settings.state_refresh_seconds + 1,
    )


async def build(settings: Settings) -> ServiceApp:
    collections, states, state = await build_collections(settings)
    layout = LayoutCache(states, settings.state_refresh_seconds)
    layout.set(state)
    embedder = EmbeddingClient(settings.embedding, background_key(settings))
    store = RoutedStore(collections, layout, embedder)
    service = SearchService(store, embedder, settings.dimensions, models=store,
                            ranking=settings.hybrid.ranking())
    reembed = build_reembed(settings, collections, states, layout, embedder)
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    handlers = event_api.IndexingHandlers(
        Indexer(store), bus, settings.dimensions, settings.write_concurrency, models=store
    )
    event_api.register(
        bus, handlers, settings.consumer_group, settings.deletes_consumer_group,
        settings.max_records,
    )
    tenant_api.register(bus, store)
    # While Weaviate is down, failing batches are an outage (retried), never bad records.
    bus.add_health_probe(collections.ready)
    # Switches are platform-wide admin actions: recorded in the platform's audit log.
    audit = SqlAuditLog(open_engine(settings.auth_database_url))
    app = ServiceApp(settings, bus, build_grpc(settings, service, reembed, audit), TOPICS)
    app.on(Stage.RESOURCE, stop=collections.close)
    app.on(Stage.RESOURCE, stop=embedder.close)

    watcher: list[asyncio.Task[None]] = []

    async def watch() -> None:
        watcher.append(asyncio.create_task(reembed.watch(), name="re-embed-watch"))

    async def stop() -> None:
        for task in watcher:
            task.cancel()
        await asyncio.gather(*watcher, return_exceptions=True)
        await reembed.stop()

    # A re-embed a crashed replica left behind continues here (it must stop before the
    # Weaviate and embedding clients close).
    app.on(Stage.BUS_CLIENT, start=watch, stop=stop)
    return app


async def serve(settings: Settings) -> None:
    await (await build(settings)).serve()
