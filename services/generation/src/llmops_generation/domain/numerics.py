"""Which numeric format a model runs in, chosen from the CPU's capabilities at start-up.

bfloat16 halves memory traffic, but a CPU without native bfloat16 instructions emulates it:
on a 2-core AVX2 machine a 1,380-token prefill of SmolLM2-135M took 26 s in bfloat16 and
5.4 s in float32. So "auto" picks bfloat16 only where the CPU has native support
(avx512_bf16 or amx_bf16), and float32 everywhere else. "int8" is float32 with the Linear
layers' weights quantised to int8 (torch dynamic quantisation: activations are quantised per
call), which prefills faster than float32 on such CPUs at a small cost in exactness.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# What a setting or an admin load may ask for.
DTYPE_CHOICES = ("auto", "bfloat16", "float32", "float16", "int8")
# The formats a loader receives once "auto" has been resolved.
CONCRETE_DTYPES = ("bfloat16", "float32", "float16", "int8")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# The widest vector extension names the CPU in the reason (most capable first).
_VECTOR_FLAGS = ("avx512f", "avx2", "avx", "neon", "asimd")


@dataclass(frozen=True)
class NumericFormat:
    """The chosen format ("bfloat16", "float32", "float16" or "int8") and why."""

    dtype: str
    reason: str

    @property
    def torch_dtype(self) -> str:
        """The dtype the weights load in (int8 quantises float32 weights after loading)."""
        return "float32" if self.dtype == "int8" else self.dtype

    @property
    def quantized(self) -> bool:
        return self.dtype == "int8"


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of /proc/cpuinfo's text (x86 `flags`, ARM `Features`)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def read_cpu_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """This machine's CPU flags; empty when the OS does not publish them (not Linux)."""
    try:
        return parse_cpu_flags(path.read_text(errors="replace"))
    except OSError:
        return frozenset()


def _vector_isa(flags: Iterable[str]) -> str:
    present = set(flags)
    return next((flag for flag in _VECTOR_FLAGS if flag in present), "no vector extensions known")


def choose_format(requested: str, flags: frozenset[str], *, source: str = "setting") -> NumericFormat:
    """Resolves `requested` ("auto" or a concrete format) against the CPU's flags.

    `source` says who asked for an explicit format ("setting", "admin load"); it is part of
    the reason, so /info tells an operator whether the CPU or a person picked it.
    """
    if requested not in DTYPE_CHOICES:
        raise ValueError(f"dtype must be one of {DTYPE_CHOICES}, not {requested!r}")
    if requested != "auto":
        return NumericFormat(requested, f"requested by {source}")
    native = [flag for flag in NATIVE_BF16_FLAGS if flag in flags]
    if native:
        return NumericFormat("bfloat16", f"cpu has native bfloat16 ({', '.join(native)})")
    if not flags:
        return NumericFormat("float32", "cpu flags unknown; float32 is never emulated")
    return NumericFormat("float32", f"cpu has no native bfloat16 ({_vector_isa(flags)})")
