"""Loading a causal LM with transformers; a GGUF file is converted once into a plain HF folder.

transformers dequantises a GGUF file on every load (~18 s for SmolLM2-135M); the converted
folder loads in about a second. The cache is keyed by the GGUF file's path, size and mtime,
written to a temporary folder and renamed into place under a file lock, so concurrent
servers neither convert twice nor read a half-written folder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmops_generation.adapters.codec import HFTextCodec
from llmops_generation.adapters.decoder import TransformersDecoder
from llmops_generation.adapters.fast_decoder import FastDecoder
from llmops_generation.adapters.fast_llama import FastLlama, unsupported_reason
from llmops_generation.domain.model import ModelSpec
from llmops_generation.domain.numerics import CONCRETE_DTYPES, choose_format, read_cpu_flags

log = logging.getLogger(__name__)

_MARKER = "llmops-source.json"


def cache_name(model_id: str) -> str:
    """`HuggingFaceTB/SmolLM2-135M-Instruct` -> `smollm2-135m-instruct`."""
    return re.sub(r"[^a-z0-9._-]+", "-", model_id.rsplit("/", 1)[-1].lower()).strip("-.") or "model"


def gguf_key(gguf: Path) -> dict[str, Any]:
    """What a cache made from `gguf` is keyed by: its real path, size and mtime."""
    stat = gguf.stat()
    return {"gguf": str(gguf.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def is_current(marker: Path, key: dict[str, Any]) -> bool:
    """Whether the cache whose `marker` file holds `key` was made from the file as it is now."""
    try:
        return bool(json.loads(marker.read_text()) == key)
    except (OSError, ValueError):
        return False


@contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_once(gguf: Path, target: Path, marker: Path, make: Callable[[Path], None], what: str) -> bool:
    """Makes `target` (a file or a folder) from `gguf` with `make(tmp)`; False when `marker` says
    it already was made from the file as it is now.

    Under a file lock and into a temporary name renamed into place, so concurrent servers
    neither build it twice nor read a half-written one; the marker is written last.
    """
    key = gguf_key(gguf)
    if target.exists() and is_current(marker, key):
        return False
    with locked(target.parent / f".{target.name}.lock"):
        if target.exists() and is_current(marker, key):
            return False
        started = time.perf_counter()
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        _remove(tmp)
        try:
            make(tmp)
        except BaseException:
            _remove(tmp)
            raise
        _remove(target)
        os.replace(tmp, target)
        marker.write_text(json.dumps(key))
        log.info(what, extra={"gguf": str(gguf), "target": str(target),
                              "seconds": round(time.perf_counter() - started, 2)})
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def convert_gguf(source: Path, gguf_file: str, target: Path) -> bool:
    """Makes `target` a plain HF copy of the GGUF model; False when it already was one."""
    gguf = source / gguf_file
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf}")

    def make(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file)
        # The weights are dequantised already; the GGUF quantizer only blocks save_pretrained.
        setattr(model, "hf_quantizer", None)  # noqa: B010 (typed as a module attribute)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return build_once(gguf, target, target / _MARKER, make, "converted GGUF model to a transformers folder")


def quantize_int8(model: Any) -> Any:
    """float32 model -> the same model with int8 weights in its Linear layers (torch dynamic).

    torch marks torch.ao.quantization deprecated in favour of torchao, but the eager dynamic
    path still ships and needs no extra package; its warnings say nothing an operator can act on.
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def fast_engine(model: Any, *, int8: bool, enabled: bool) -> tuple[FastLlama | None, str]:
    """The fast decode path's engine for `model`, or None and why transformers decodes instead."""
    if not enabled:
        return None, "transformers (LLMOPS_GENERATION_FAST_DECODE=false)"
    reason = unsupported_reason(model)
    if reason is not None:
        return None, f"transformers (fast path unsupported: {reason})"
    return FastLlama(model, int8=int8), ""


class TransformersLoader:
    """Implements ports.ModelLoader."""

    def __init__(self, cache_root: Path, *, fast_decode: bool = True) -> None:
        self._cache_root = cache_root
        self._fast_decode = fast_decode

    @property
    def cache_root(self) -> Path:
        return self._cache_root

    def model_dir(self, spec: ModelSpec) -> Path:
        if spec.gguf_file is None:
            return spec.path
        target = self._cache_root / cache_name(spec.model_id)
        convert_gguf(spec.path, spec.gguf_file, target)
        return target

    def load(self, spec: ModelSpec) -> tuple[HFTextCodec, TransformersDecoder | FastDecoder]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        fmt = choose_format(spec.dtype, read_cpu_flags())
        if fmt.dtype not in CONCRETE_DTYPES:
            raise ValueError(f"dtype must be one of {CONCRETE_DTYPES}, not {spec.dtype!r}")
        started = time.perf_counter()
        folder = self.model_dir(spec)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, fmt.torch_dtype))
        model.eval()
        # The fast path copies (and for int8 quantises) the float weights before transformers'
        # own int8 model is made, which serves only LoRA rows (none: int8 refuses adapters).
        engine, path = fast_engine(model, int8=fmt.quantized, enabled=self._fast_decode)
        if fmt.quantized:
            model = quantize_int8(model)
        eos = model.generation_config.eos_token_id
        eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
        if tokenizer.eos_token_id is not None:
            eos_ids.add(int(tokenizer.eos_token_id))
        if not eos_ids:
            raise ValueError(f"model {spec.model_id!r} declares no end-of-sequence token")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
        base = TransformersDecoder(
            model, frozenset(eos_ids), int(pad), quantized=fmt.quantized, decode_path=path
        )
        decoder = base if engine is None else FastDecoder(engine, base)
        log.info(
            "model loaded",
            extra={
                "model_id": spec.model_id,
                "folder": str(folder),
                "dtype": fmt.dtype,
                "decode_path": decoder.decode_path,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )
        return HFTextCodec(tokenizer), decoder
