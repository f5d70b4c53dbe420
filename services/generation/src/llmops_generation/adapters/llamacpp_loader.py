"""Choosing the engine per model: llama.cpp for a GGUF file, transformers for everything else.

`LLMOPS_GENERATION_ENGINE`: "transformers" loads every model with transformers; "llamacpp"
serves GGUF models with llama.cpp (a transformers folder, such as a fine-tuned full-model
version, still loads with transformers: llama.cpp reads only GGUF); "auto" is "llamacpp"
when llama-cpp-python imports and "transformers" when it does not.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass, replace
from typing import Literal

from llmops_generation.adapters.codec import HFTextCodec
from llmops_generation.adapters.decoder import TransformersDecoder
from llmops_generation.adapters.llamacpp_decoder import LlamaCppDecoder
from llmops_generation.adapters.llamacpp_model import LlamaCppModel, backend, default_threads
from llmops_generation.adapters.llamacpp_weights import (
    ExtraBuffersChoice,
    WeightsChoice,
    copies_dir,
    served_weights,
)
from llmops_generation.adapters.loader import TransformersLoader
from llmops_generation.domain.model import ModelSpec
from llmops_generation.ports import Decoder

log = logging.getLogger(__name__)

EngineChoice = Literal["auto", "transformers", "llamacpp"]


def llamacpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def resolve_engine(choice: EngineChoice) -> Literal["transformers", "llamacpp"]:
    """The engine GGUF models get; "llamacpp" without the package fails at start-up."""
    if choice == "transformers":
        return "transformers"
    if llamacpp_available():
        return "llamacpp"
    if choice == "llamacpp":
        raise ValueError("LLMOPS_GENERATION_ENGINE=llamacpp but llama-cpp-python is not installed")
    return "transformers"


@dataclass(frozen=True)
class LlamaCppConfig:
    slots: int  # concurrent sequences (the batcher's max_batch_size)
    ctx_per_slot: int  # tokens one sequence may hold (max_total_tokens)
    n_batch: int = 2048  # tokens per llama_decode call; longer steps are split
    threads: int | None = None  # None: the CPUs this process may use
    threads_batch: int | None = None
    prefix_cache: bool = True  # reuse the KV cells of ended sequences sharing a prompt prefix
    flash_attn: bool | None = None  # None: llama.cpp's choice (on, on CPU)
    weights: WeightsChoice = "auto"  # the file's weights, or a Q8_0 copy (llamacpp_weights.py)
    extra_buffers: ExtraBuffersChoice = "auto"  # llama.cpp's repacked/AMX layouts (llamacpp_weights.py)


class EngineLoader:
    """Implements ports.ModelLoader over both engines."""

    def __init__(
        self, transformers: TransformersLoader, engine: EngineChoice, config: LlamaCppConfig
    ) -> None:
        self._transformers = transformers
        self.engine = resolve_engine(engine)
        self._config = config

    def load(self, spec: ModelSpec) -> tuple[HFTextCodec, Decoder]:
        if self.engine == "transformers" or spec.gguf_file is None:
            return self._transformers.load(spec)
        return self._load_llamacpp(spec)

    def _load_llamacpp(self, spec: ModelSpec) -> tuple[HFTextCodec, LlamaCppDecoder]:
        from transformers import AutoTokenizer, GenerationConfig

        assert spec.gguf_file is not None
        started = time.perf_counter()
        # The converted folder (made once, cached) gives the tokenizer, the EOS ids and the
        # weights of the LoRA fallback; llama.cpp reads the GGUF file itself.
        folder = self._transformers.model_dir(spec)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        eos_ids: set[int] = set()
        try:
            eos = GenerationConfig.from_pretrained(folder).eos_token_id
            eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
        except OSError:
            pass
        if tokenizer.eos_token_id is not None:
            eos_ids.add(int(tokenizer.eos_token_id))
        if not eos_ids:
            raise ValueError(f"model {spec.model_id!r} declares no end-of-sequence token")
        cfg = self._config
        threads = cfg.threads or default_threads()
        weights = served_weights(
            backend(),
            spec.path / spec.gguf_file,
            cfg.weights,
            copies_dir(self._transformers.cache_root),
            threads,
            cfg.extra_buffers,
        )
        model = LlamaCppModel(
            weights.path,
            slots=cfg.slots,
            ctx_per_slot=cfg.ctx_per_slot,
            n_batch=cfg.n_batch,
            threads=threads,
            threads_batch=cfg.threads_batch or threads,
            flash_attn=cfg.flash_attn,
            extra_buffers=weights.extra_buffers,
        )
        if model.vocab_size < len(tokenizer):
            model.close()
            raise ValueError(f"GGUF vocabulary ({model.vocab_size}) is smaller than the tokenizer's")
        # LoRA needs float weights: the fallback is float32 whatever the server's dtype is.
        float_spec = replace(spec, dtype="float32")

        def fallback() -> TransformersDecoder:
            _codec, decoder = TransformersLoader(self._transformers.cache_root, fast_decode=False).load(
                float_spec
            )
            assert isinstance(decoder, TransformersDecoder)
            return decoder

        decoder = LlamaCppDecoder(
            model, frozenset(eos_ids), fallback, weights=weights, prefix_cache=cfg.prefix_cache
        )
        log.info(
            "model loaded",
            extra={
                "model_id": spec.model_id,
                "gguf": spec.gguf_file,
                "engine": "llamacpp",
                "decode_path": decoder.decode_path,
                "weights_reason": weights.reason,
                "extra_buffers": weights.extra_buffers_reason,
                "prefix_cache": decoder.prefix_cache,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )
        return HFTextCodec(tokenizer), decoder
