"""Dataset settings (env prefix LLMOPS_DATASETS_), built once and passed to build_dataset_service.

The trainer service's Settings can nest them (`datasets: DatasetSettings =
Field(default_factory=DatasetSettings)`); they read their own LLMOPS_DATASETS_* variables.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmops_datasets.build import DEFAULT_BASE_MODEL
from llmops_datasets.store import default_root
from llmops_datasets.tokens import default_tokenizer_dir
from llmops_kit import ports
from llmops_kit.settings import llmops_home


class DatasetSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMOPS_DATASETS_", extra="ignore")

    # A folder or an fsspec URL (s3://bucket/prefix needs s3fs and AWS_* credentials).
    root: str = Field(default_factory=default_root)
    # Local copies of versions read from object storage. Default $LLMOPS_HOME/cache/datasets.
    cache_dir: Path | None = None
    # A folder with the base model's tokenizer.json. Default: the generation service's converted
    # SmolLM2 folder, $LLMOPS_HOME/models/smollm2-135m-instruct (else read from the GGUF file).
    tokenizer_path: Path | None = None
    base_model: str = DEFAULT_BASE_MODEL
    # Records longer than this (in the base model's tokens) are invalid; text is cut into windows.
    max_seq_len: int = Field(default=2048, ge=8, le=8192)
    validation_fraction: float = Field(default=0.1, ge=0, lt=1)
    seed: int = Field(default=0, ge=0)
    near_duplicate_threshold: float = Field(default=0.85, gt=0, le=1)
    num_perm: int = Field(default=128, ge=16, le=1024)
    shingle_words: int = Field(default=3, ge=1, le=16)
    redact_pii: bool = True
    # How many problems an error (and a version's manifest) lists.
    max_errors: int = Field(default=20, ge=1, le=1000)
    max_upload_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_records: int = Field(default=200_000, ge=1)
    max_documents: int = Field(default=500, ge=1)
    # Builds running at once (each takes a CPU core while it runs).
    max_concurrent_builds: int = Field(default=2, ge=1, le=64)
    ingestion_address: str = Field(default_factory=lambda: ports.service_address("ingestion"))
    vectorstore_address: str = Field(default_factory=lambda: ports.service_address("vector-store"))
    # Seconds for each call to ingestion and the vector store.
    document_timeout_seconds: float = Field(default=30, gt=0)

    @model_validator(mode="after")
    def _defaults(self) -> DatasetSettings:
        if self.tokenizer_path is None:
            self.tokenizer_path = default_tokenizer_dir(llmops_home())
        return self
