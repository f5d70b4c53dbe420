"""Composition root: builds the model, the bus and the gRPC server, and wires them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from llmops.embedding.v1 import embedding_pb2_grpc
from llmops_embedding.adapters.sentence_transformers import SentenceTransformerEmbedder
from llmops_embedding.api import events as event_api
from llmops_embedding.api.grpc import SERVICE_FULL_NAME, EmbeddingServicer
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_embedding.settings import Settings
from llmops_kit import events
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.runner import run_until_signalled

log = logging.getLogger(__name__)

TOPICS = (events.CHUNKS_CREATED.topic, events.CHUNK_VECTORS.topic)


@dataclass
class App:
    settings: Settings
    service: EmbeddingService
    bus: EventBus
    grpc: GrpcServer

    async def start(self) -> None:
        await ensure_topics(self.settings.kafka, TOPICS)
        await self.grpc.start()
        await self.bus.start()

    async def stop(self) -> None:
        # gRPC first (readiness off, in-flight calls drain), then the consumer commits and leaves.
        await self.grpc.stop(self.settings.grpc_grace_seconds)
        await self.bus.stop()


def build_grpc(settings: Settings, service: EmbeddingService) -> GrpcServer:
    server = GrpcServer(settings.grpc_host, settings.grpc_port, settings.api_key_map())
    server.add(
        embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server,
        EmbeddingServicer(service),
        [SERVICE_FULL_NAME],
    )
    return server


async def build(settings: Settings) -> App:
    embedder = await SentenceTransformerEmbedder.load(settings.encoder)
    service = EmbeddingService(embedder)
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    handler = event_api.ChunksCreatedHandler(service, bus)
    event_api.register(bus, handler, settings.consumer_group, settings.max_records)
    return App(settings, service, bus, build_grpc(settings, service))


async def serve(settings: Settings) -> None:
    app = await build(settings)
    await run_until_signalled(app.start, app.stop)
