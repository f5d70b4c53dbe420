"""Composition root: builds the model, the bus and the gRPC server, and wires them."""

from __future__ import annotations

import logging

from llmops.embedding.v1 import embedding_pb2_grpc
from llmops_embedding.api import events as event_api
from llmops_embedding.api.grpc import ROLES, SERVICE_FULL_NAME, EmbeddingServicer
from llmops_embedding.api.metrics import record_backend
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_embedding.models import load_embedder
from llmops_embedding.settings import Settings
from llmops_kit import events
from llmops_kit.app import ServiceApp
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus
from llmops_kit.key_resolver import build_resolver

log = logging.getLogger(__name__)

TOPICS = (events.CHUNKS_CREATED.topic, events.CHUNK_VECTORS.topic)


def build_grpc(settings: Settings, service: EmbeddingService) -> GrpcServer:
    server = GrpcServer(settings.grpc_host, settings.grpc_port, build_resolver(settings))
    server.add(
        embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server,
        EmbeddingServicer(service),
        [SERVICE_FULL_NAME],
        ROLES,
    )
    return server


async def build(settings: Settings) -> ServiceApp:
    default, *extra = [await load_embedder(encoder) for encoder in settings.encoders()]
    report = getattr(default, "report", None)
    if report is not None:  # sentence-transformers models: which backend serves, and why
        record_backend(report)
    service = EmbeddingService(default, extra)
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    handler = event_api.EmbeddingHandlers(service, bus)
    event_api.register(bus, handler, settings.consumer_group, settings.max_records)
    return ServiceApp(settings, bus, build_grpc(settings, service), TOPICS)


async def serve(settings: Settings) -> None:
    await (await build(settings)).serve()
