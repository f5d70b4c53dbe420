"""Composition root: Weaviate store, embedding client, bus and gRPC server, wired together."""

from __future__ import annotations

import logging

from llmops.vectorstore.v1 import vectorstore_pb2_grpc
from llmops_kit import events
from llmops_kit.app import ServiceApp, Stage
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus
from llmops_kit.key_resolver import build_resolver
from llmops_vectorstore.adapters import weaviate_schema
from llmops_vectorstore.adapters.embedding_client import EmbeddingClient
from llmops_vectorstore.adapters.weaviate import WeaviateStore
from llmops_vectorstore.api import events as event_api
from llmops_vectorstore.api import tenants as tenant_api
from llmops_vectorstore.api.grpc import ROLES, SERVICE_FULL_NAME, VectorStoreServicer
from llmops_vectorstore.domain.indexing import Indexer
from llmops_vectorstore.domain.search import SearchService
from llmops_vectorstore.settings import Settings

log = logging.getLogger(__name__)

TOPICS = (
    events.CHUNK_VECTORS.topic,
    events.DOCUMENT_DELETED.topic,
    events.CHUNKS_INDEXED.topic,
    events.TENANT_DELETED.topic,
)


def build_grpc(settings: Settings, service: SearchService) -> GrpcServer:
    server = GrpcServer(settings.grpc_host, settings.grpc_port, build_resolver(settings))
    server.add(
        vectorstore_pb2_grpc.add_VectorStoreServiceServicer_to_server,
        VectorStoreServicer(service),
        [SERVICE_FULL_NAME],
        ROLES,
    )
    return server


async def build_store(settings: Settings) -> WeaviateStore:
    client = await weaviate_schema.connect(
        settings.weaviate, settings.weaviate_connect_timeout_seconds
    )
    store = WeaviateStore(client, settings.collection, settings.documents_collection)
    try:
        await store.ensure_schema()
    except Exception:
        await store.close()
        raise
    return store


async def build(settings: Settings) -> ServiceApp:
    store = await build_store(settings)
    embedder = EmbeddingClient(settings.embedding)
    service = SearchService(store, embedder, settings.dimensions,
                            ranking=settings.hybrid.ranking())
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    handlers = event_api.IndexingHandlers(
        Indexer(store), bus, settings.dimensions, settings.write_concurrency
    )
    event_api.register(
        bus, handlers, settings.consumer_group, settings.deletes_consumer_group,
        settings.max_records,
    )
    tenant_api.register(bus, store)
    # While Weaviate is down, failing batches are an outage (retried), never bad records.
    bus.add_health_probe(store.ready)
    app = ServiceApp(settings, bus, build_grpc(settings, service), TOPICS)
    app.on(Stage.RESOURCE, stop=store.close)
    app.on(Stage.RESOURCE, stop=embedder.close)
    return app


async def serve(settings: Settings) -> None:
    await (await build(settings)).serve()
