"""Which weights llama.cpp serves: the GGUF file's own, or a Q8_0 copy made once from them.

llama.cpp's CPU backend multiplies a matrix by several rows at once (a step of concurrent
sequences, a prompt's tokens) with whole-matrix kernels (llamafile's tinyBLAS) only for F32,
F16, BF16, Q8_0, Q4_0, Q5_0 and IQ4_NL weights. A Q4_1 or Q5_1 matrix falls back to one vector
dot product per row and column, so a batch of 8 rows costs almost 8 single rows. The shipped
SmolLM2 file is Q4_1.

`LLMOPS_GENERATION_LLAMACPP_WEIGHTS`:
- "file": the GGUF file's weights as they are;
- "q8_0": a Q8_0 copy, made by llama.cpp's own quantizer and cached beside the converted
  transformers folder (keyed by the file's path, size and mtime, written under a lock and
  renamed into place);
- "auto" (the default): the Q8_0 copy when the file is Q4_1 or Q5_1 *and* this llama.cpp
  build has tinyBLAS with Q8_0 kernels for this CPU (x86 AVX/AVX2/AVX-512, ARM dot product),
  as llama.cpp's own system info reports them; the file otherwise.

Q8_0 keeps more precision than the 4- and 5-bit blocks it is made from: 8 rather than 4 or 5
bits per weight on a per-32 scale. The copy takes 1.7x the file's memory (145 vs 86 MB for
SmolLM2-135M).

`LLMOPS_GENERATION_LLAMACPP_EXTRA_BUFFERS` decides whether llama.cpp may re-lay the weights out
for its extra CPU kernels (llama_model_params.use_extra_bufts: the repacked layouts and Intel
AMX tiles). "auto" turns them off where llama.cpp's system info reports AMX_INT8: on
Sapphire-Rapids-class CPUs its AMX matrix multiply segfaults in the first decode on some
machines (llama.cpp issue 20824, reproduced on a 2-core Xeon VM with this build), which would
take the whole server down. "on" keeps them, "off" drops them everywhere.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmops_generation.adapters.loader import build_once

WeightsChoice = Literal["auto", "file", "q8_0"]
ExtraBuffersChoice = Literal["auto", "on", "off"]

# llama_ftype values (llama.h) of the file types "auto" widens, and of Q8_0.
WIDENED: dict[int, str] = {3: "Q4_1", 9: "Q5_1"}
Q8_0 = 7
_ISA_WITH_Q8_0_GEMM = ("AVX", "AVX2", "AVX512", "DOTPROD")


@dataclass(frozen=True)
class ServedWeights:
    path: Path
    file_type: str  # the GGUF file's, as llama.cpp names it: "Q4_1", "Q4_K - Medium", ...
    served: str  # "Q8_0" when a copy serves, else the file's type
    reason: str
    extra_buffers: bool = True  # llama.cpp may repack the weights for its extra kernels (AMX, ...)
    extra_buffers_reason: str = ""


def system_features(info: str) -> frozenset[str]:
    """The features llama_print_system_info reports as present ("AVX2 = 1 | ..." -> {"AVX2"})."""
    present = set()
    for part in info.replace("\n", "|").split("|"):
        name, sep, value = part.partition("=")
        if sep and value.strip() == "1":
            present.add(name.strip().rsplit(":", 1)[-1].strip())
    return frozenset(present)


def build_features(lib: Any) -> frozenset[str]:
    """What this llama.cpp build reports for this CPU (llama_print_system_info, parsed)."""
    return system_features(lib.llama_print_system_info().decode(errors="replace"))


def q8_0_gemm(features: frozenset[str]) -> bool:
    """Whether this llama.cpp build multiplies Q8_0 matrices with tinyBLAS on this CPU."""
    return "LLAMAFILE" in features and any(isa in features for isa in _ISA_WITH_Q8_0_GEMM)


def choose(
    requested: WeightsChoice, file_type: int, features: frozenset[str], name: str = ""
) -> tuple[bool, str]:
    """(serve a Q8_0 copy?, why) for a file of llama_ftype `file_type` (`name`: llama.cpp's name)."""
    name = name or type_name(file_type)
    if requested == "file":
        return False, "LLMOPS_GENERATION_LLAMACPP_WEIGHTS=file"
    if requested == "q8_0":
        if file_type == Q8_0:
            return False, "the file is Q8_0 already"
        return True, f"LLMOPS_GENERATION_LLAMACPP_WEIGHTS=q8_0 (file is {name})"
    if file_type not in WIDENED:
        return False, f"{name} weights have batched kernels here or are served as they are"
    if not q8_0_gemm(features):
        return False, f"{name} kept: this llama.cpp build has no Q8_0 matrix kernels for this CPU"
    return True, f"{name} has no batched matrix kernel in llama.cpp; Q8_0 does on this CPU"


def extra_buffers(requested: ExtraBuffersChoice, features: frozenset[str]) -> tuple[bool, str]:
    """(let llama.cpp repack weights for its extra kernels?, why), from the setting and the CPU."""
    if requested != "auto":
        return requested == "on", f"LLMOPS_GENERATION_LLAMACPP_EXTRA_BUFFERS={requested}"
    if "AMX_INT8" in features:
        return False, "off: llama.cpp's AMX matrix multiply crashes on some AMX CPUs (llama.cpp issue 20824)"
    return True, "on: llama.cpp repacks weights where it has kernels for them"


def type_name(file_type: int) -> str:
    return "Q8_0" if file_type == Q8_0 else WIDENED.get(file_type, f"ftype {file_type}")


def read_file_type(lib: Any, gguf: Path) -> tuple[int, str]:
    """The file's `general.file_type` (a llama_ftype) and llama.cpp's name for it, read without
    its tensors."""
    params = lib.llama_model_default_params()
    params.vocab_only = True
    model = lib.llama_model_load_from_file(str(gguf).encode(), params)
    if not model:
        raise ValueError(f"llama.cpp could not read {gguf}")
    try:
        buf = ctypes.create_string_buffer(128)
        found = lib.llama_model_meta_val_str(model, b"general.file_type", buf, len(buf)) >= 0
        file_type = int(buf.value.decode()) if found else -1
        # llama_model_desc: "<arch> <size> <file type name>", e.g. "llama ?B Q4_1".
        lib.llama_model_desc(model, buf, len(buf))
        parts = buf.value.decode(errors="replace").split(" ", 2)
        return file_type, parts[2] if len(parts) == 3 else type_name(file_type)
    finally:
        lib.llama_model_free(model)


def q8_0_copy(lib: Any, gguf: Path, cache_dir: Path, threads: int) -> Path:
    """A Q8_0 copy of `gguf` in `cache_dir`, made on first need and reused while the file is unchanged."""
    target = cache_dir / f"{gguf.stem}.q8_0.gguf"

    def make(tmp: Path) -> None:
        params = lib.llama_model_quantize_default_params()
        params.ftype = Q8_0
        params.allow_requantize = True
        params.nthread = threads
        rc = lib.llama_model_quantize(str(gguf).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0:
            raise RuntimeError(f"llama.cpp could not make a Q8_0 copy of {gguf} ({rc})")

    cache_dir.mkdir(parents=True, exist_ok=True)
    marker = cache_dir / f"{gguf.stem}.q8_0.json"
    build_once(gguf, target, marker, make, "made a Q8_0 copy of the GGUF weights")
    return target


def copies_dir(cache_root: Path) -> Path:
    """Where the copies live: beside the converted transformers folders (TransformersLoader's cache_root)."""
    return cache_root / "llamacpp"


def served_weights(
    lib: Any,
    gguf: Path,
    requested: WeightsChoice,
    cache_dir: Path,
    threads: int,
    extra: ExtraBuffersChoice = "auto",
) -> ServedWeights:
    file_type, name = read_file_type(lib, gguf)
    features = build_features(lib)
    widen, reason = choose(requested, file_type, features, name)
    repack, repack_reason = extra_buffers(extra, features)
    path = q8_0_copy(lib, gguf, cache_dir, threads) if widen else gguf
    return ServedWeights(path, name, "Q8_0" if widen else name, reason, repack, repack_reason)
