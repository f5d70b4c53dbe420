"""Ingestion settings (env prefix LLMOPS_INGESTION_, plus the shared LLMOPS_* ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from llmops_kit import ports
from llmops_kit.settings import ServiceSettings, service_config


class HuggingFaceTokenizerConfig(BaseModel):
    """The embedding model's own tokenizer.json; default: the one shipped with the model."""

    kind: Literal["huggingface"] = "huggingface"
    path: Path | None = None


class WordTokenizerConfig(BaseModel):
    kind: Literal["words"]


class Settings(ServiceSettings):
    model_config = service_config("LLMOPS_INGESTION_")

    service_name: str = "ingestion"
    grpc_port: int = Field(default_factory=lambda: ports.service_port("ingestion"))
    database_url: str = "sqlite:///.llmops/data/ingestion.db"
    tokenizer: Annotated[
        HuggingFaceTokenizerConfig | WordTokenizerConfig, Field(discriminator="kind")
    ] = Field(default_factory=HuggingFaceTokenizerConfig)
    chunk_tokens: int = Field(default=200, ge=8, le=4096)
    chunk_overlap_tokens: int = Field(default=40, ge=0)
    chunks_per_event: int = Field(default=64, ge=1, le=1024)
    max_document_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    max_batch_documents: int = Field(default=256, ge=1)
    consumer_max_records: int = Field(default=16, ge=1)
    # Replace PII (e-mail, phones, cards, IDs, secrets...) with labels before chunking.
    redact_pii: bool = True
