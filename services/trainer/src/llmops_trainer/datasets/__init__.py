"""Dataset versions served by the trainer: DatasetService (gRPC) over llmops_datasets and a SQL
catalogue. The trainer's composition root registers it:

    servicer = build_dataset_service(DatasetSettings(), engine)
    register(grpc_server, servicer)          # or grpc_server.add(..., [SERVICE_NAME], ROLES)
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from llmops_datasets import DatasetStore, HFTokenCounter, TokenCounter
from llmops_trainer.datasets.catalogue import SqlCatalogue, create_schema
from llmops_trainer.datasets.grpc import (
    DATASET_CREATED_TOPIC,
    ROLES,
    SERVICE_NAME,
    DatasetServicer,
    dataset_created_event,
    register,
)
from llmops_trainer.datasets.service import DatasetService, OnCreated
from llmops_trainer.datasets.settings import DatasetSettings
from llmops_trainer.datasets.sources import DocumentSource, GrpcDocumentSource

__all__ = ["DATASET_CREATED_TOPIC", "ROLES", "SERVICE_NAME", "DatasetServicer", "DatasetSettings",
           "build_dataset_service", "dataset_created_event", "register"]


def build_dataset_service(settings: DatasetSettings, engine: Engine,
                          documents: DocumentSource | None = None,
                          counter: TokenCounter | None = None,
                          on_created: OnCreated | None = None) -> DatasetServicer:
    """The servicer on `engine` (its catalogue table is created if missing). `documents` and
    `counter` replace the gRPC document reader and the SmolLM2 tokenizer (tests); `on_created`
    is awaited once per new version (publish `dataset_created_event(entry)` there)."""
    create_schema(engine)
    source = documents or GrpcDocumentSource(settings.ingestion_address,
                                             settings.vectorstore_address,
                                             settings.document_timeout_seconds)

    def load_counter() -> TokenCounter:
        return counter or HFTokenCounter.load(settings.tokenizer_path)

    service = DatasetService(settings, DatasetStore(settings.root, settings.cache_dir),
                             SqlCatalogue(engine), load_counter, source, on_created)
    return DatasetServicer(service)
