"""Composition root: Weaviate store, embedding client, bus and gRPC server, wired together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from llmops.vectorstore.v1 import vectorstore_pb2_grpc
from llmops_kit import events
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.runner import run_until_signalled
from llmops_vectorstore.adapters import weaviate_schema
from llmops_vectorstore.adapters.embedding_client import EmbeddingClient
from llmops_vectorstore.adapters.weaviate import WeaviateStore
from llmops_vectorstore.api import events as event_api
from llmops_vectorstore.api.grpc import SERVICE_FULL_NAME, VectorStoreServicer
from llmops_vectorstore.domain.indexing import Indexer
from llmops_vectorstore.domain.search import SearchService
from llmops_vectorstore.settings import Settings

log = logging.getLogger(__name__)

TOPICS = (
    events.CHUNK_VECTORS.topic,
    events.DOCUMENT_DELETED.topic,
    events.CHUNKS_INDEXED.topic,
)


@dataclass
class App:
    settings: Settings
    store: WeaviateStore
    embedder: EmbeddingClient
    bus: EventBus
    grpc: GrpcServer

    async def start(self) -> None:
        await ensure_topics(self.settings.kafka, TOPICS)
        await self.grpc.start()
        await self.bus.start()

    async def stop(self) -> None:
        await self.grpc.stop(self.settings.grpc_grace_seconds)
        await self.bus.stop()
        await self.embedder.close()
        await self.store.close()


def build_grpc(settings: Settings, service: SearchService) -> GrpcServer:
    server = GrpcServer(settings.grpc_host, settings.grpc_port, settings.api_key_map())
    server.add(
        vectorstore_pb2_grpc.add_VectorStoreServiceServicer_to_server,
        VectorStoreServicer(service),
        [SERVICE_FULL_NAME],
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


async def build(settings: Settings) -> App:
    store = await build_store(settings)
    embedder = EmbeddingClient(settings.embedding)
    service = SearchService(store, embedder, settings.dimensions)
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    handlers = event_api.IndexingHandlers(
        Indexer(store), bus, settings.dimensions, settings.write_concurrency
    )
    event_api.register(
        bus, handlers, settings.consumer_group, settings.deletes_consumer_group,
        settings.max_records,
    )
    return App(settings, store, embedder, bus, build_grpc(settings, service))


async def serve(settings: Settings) -> None:
    app = await build(settings)
    await run_until_signalled(app.start, app.stop)
