"""The numeric format chosen from the CPU's flags, shown by /info and the admin routes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from llmops_generation.adapters.loader import quantize_int8
from llmops_generation.bootstrap import build_app
from llmops_generation.domain.numerics import choose_format, parse_cpu_flags, read_cpu_flags
from llmops_generation.settings import Settings

pytestmark = pytest.mark.unit

# Flag sets of real CPUs, trimmed to what matters.
EPYC_AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"})
ICELAKE = frozenset({"avx", "avx2", "avx512f", "avx512bw", "avx512_vnni"})
SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8"})
ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16"})
GRAVITON = frozenset({"fp", "asimd", "sve"})

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse4_2 avx avx2 fma
bogomips\t: 4890.85

processor\t: 1
flags\t\t: fpu sse4_2 avx avx2 fma
"""


def test_cpuinfo_flags_are_parsed(tmp_path: Path) -> None:
    assert parse_cpu_flags(CPUINFO) == {"fpu", "sse4_2", "avx", "avx2", "fma"}
    assert parse_cpu_flags("Features\t: fp asimd evtstrm\n") == {"fp", "asimd", "evtstrm"}
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    assert "avx2" in read_cpu_flags(tmp_path / "cpuinfo")
    assert read_cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(("flags", "dtype", "reason"), [
    (EPYC_AVX2, "float32", "cpu has no native bfloat16 (avx2)"),
    (ICELAKE, "float32", "cpu has no native bfloat16 (avx512f)"),
    (SAPPHIRE_RAPIDS, "bfloat16", "cpu has native bfloat16 (amx_bf16, avx512_bf16)"),
    (ZEN4, "bfloat16", "cpu has native bfloat16 (avx512_bf16)"),
    (GRAVITON, "float32", "cpu has no native bfloat16 (asimd)"),
    (frozenset({"fpu"}), "float32", "cpu has no native bfloat16 (no vector extensions known)"),
    (frozenset(), "float32", "cpu flags unknown; float32 is never emulated"),
])
def test_auto_picks_bfloat16_only_with_native_support(flags, dtype, reason) -> None:
    fmt = choose_format("auto", flags)
    assert (fmt.dtype, fmt.reason) == (dtype, reason)


def test_an_explicit_format_wins_and_says_who_asked() -> None:
    fmt = choose_format("bfloat16", EPYC_AVX2, source="admin load")
    assert (fmt.dtype, fmt.reason, fmt.torch_dtype, fmt.quantized) == (
        "bfloat16", "requested by admin load", "bfloat16", False)
    int8 = choose_format("int8", SAPPHIRE_RAPIDS)
    assert (int8.dtype, int8.reason, int8.torch_dtype, int8.quantized) == (
        "int8", "requested by setting", "float32", True)
    with pytest.raises(ValueError, match="dtype must be one of"):
        choose_format("int4", EPYC_AVX2)


def app(tmp_path: Path, loader, flags: frozenset[str], **settings: object) -> TestClient:
    root = tmp_path / "models"
    root.mkdir(exist_ok=True)
    base = dict(model_path=tmp_path, gguf_file=None, model_id="fake/model", max_input_tokens=40,
                max_total_tokens=60, models_root=root, admin_key="k")
    return TestClient(build_app(Settings(**{**base, **settings}), loader=loader, cpu_flags=flags))


@pytest.mark.parametrize(("flags", "setting", "dtype", "reason"), [
    (EPYC_AVX2, "auto", "float32", "cpu has no native bfloat16 (avx2)"),
    (ZEN4, "auto", "bfloat16", "cpu has native bfloat16 (avx512_bf16)"),
    (ZEN4, "int8", "int8", "requested by setting LLMOPS_GENERATION_DTYPE"),
])
def test_info_shows_the_format_and_why(tmp_path, loader, flags, setting, dtype, reason) -> None:
    with app(tmp_path, loader, flags, dtype=setting) as client:
        info = client.get("/info").json()
    assert (info["model_dtype"], info["dtype_reason"]) == (dtype, reason)
    assert loader.specs["fake/model"].dtype == dtype  # what the loader was asked to load


def test_admin_load_resolves_or_overrides_the_format(tmp_path, loader) -> None:
    (tmp_path / "models" / "m").mkdir(parents=True)
    with app(tmp_path, loader, EPYC_AVX2, dtype="auto") as client:
        headers = {"x-api-key": "k"}
        plain = client.post("/admin/models", json={"model_id": "a", "path": "m"}, headers=headers)
        forced = client.post("/admin/models", json={"model_id": "b", "path": "m", "dtype": "int8"},
                             headers=headers)
        bad = client.post("/admin/models", json={"model_id": "c", "path": "m", "dtype": "int4"},
                          headers=headers)
        listed = {m["model_id"]: (m["dtype"], m["dtype_reason"])
                  for m in client.get("/admin/models", headers=headers).json()["models"]}
    assert (plain.status_code, forced.status_code, bad.status_code) == (201, 201, 422)
    assert listed == {
        "fake/model": ("float32", "cpu has no native bfloat16 (avx2)"),
        "a": ("float32", "cpu has no native bfloat16 (avx2)"),
        "b": ("int8", "requested by admin load"),
    }
    assert (loader.specs["a"].dtype, loader.specs["b"].dtype) == ("float32", "int8")


def test_int8_quantises_the_linear_layers_and_stays_close() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    x = torch.randn(4, 64)
    expected = model(x)
    quantized = quantize_int8(model)
    assert type(quantized[0]) is torch.ao.nn.quantized.dynamic.Linear
    assert quantized[0].weight().dtype == torch.qint8
    got = quantized(x)
    assert not torch.equal(got, expected)  # really int8 arithmetic ...
    assert torch.allclose(got, expected, atol=0.05)  # ... within int8's precision
