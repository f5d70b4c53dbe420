"""Choosing the weights llama.cpp serves: the file's own, or a Q8_0 copy (adapters/llamacpp_weights.py)."""

from __future__ import annotations

import pytest

from llmops_generation.adapters.llamacpp_weights import choose, extra_buffers, q8_0_gemm, system_features

# llama_print_system_info on a 2-core AMD EPYC with AVX-512, as llama-cpp-python prints it.
EPYC = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
        "AVX512 = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
# The same on a 2-core Sapphire Rapids Xeon VM, where llama.cpp's AMX kernel segfaulted.
XEON_AMX = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "
            "BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | "
            "AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
ARM = "CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | OPENMP = 1 | "
Q4_1, Q5_1, Q8_0, Q4_0, Q4_K_M = 3, 9, 7, 2, 15


def test_system_info_features_are_the_ones_set_to_one() -> None:
    features = system_features(EPYC)
    assert {"SSE3", "AVX2", "AVX512", "LLAMAFILE", "REPACK"} <= features
    assert system_features("CPU : AVX = 0 | AVX2 = 1 | LLAMAFILE = 0 |") == {"AVX2"}


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (EPYC, True),
        (ARM, True),
        ("CPU : SSE3 = 1 | AVX2 = 1 | LLAMAFILE = 0 |", False),  # built without tinyBLAS
        ("CPU : SSE3 = 1 | SSSE3 = 1 | LLAMAFILE = 1 |", False),  # no AVX: no Q8_0 kernel
        ("CPU : NEON = 1 | LLAMAFILE = 1 |", False),  # ARM without the dot-product extension
    ],
)
def test_q8_0_matrix_kernels_need_tinyblas_and_a_vector_isa(info: str, expected: bool) -> None:
    assert q8_0_gemm(system_features(info)) is expected


def test_auto_widens_q4_1_and_q5_1_where_q8_0_has_matrix_kernels() -> None:
    features = system_features(EPYC)
    assert choose("auto", Q4_1, features) == (
        True, "Q4_1 has no batched matrix kernel in llama.cpp; Q8_0 does on this CPU")
    assert choose("auto", Q5_1, system_features(ARM))[0] is True


def test_auto_keeps_files_that_have_kernels_or_a_cpu_without_them() -> None:
    features = system_features(EPYC)
    for file_type in (Q8_0, Q4_0, Q4_K_M, -1):
        widen, reason = choose("auto", file_type, features)
        assert widen is False and "served as they are" in reason
    widen, reason = choose("auto", Q4_1, system_features("CPU : SSE3 = 1 | LLAMAFILE = 1 |"))
    assert widen is False
    assert reason == "Q4_1 kept: this llama.cpp build has no Q8_0 matrix kernels for this CPU"


def test_the_setting_overrides_the_cpu() -> None:
    none = frozenset[str]()
    assert choose("file", Q4_1, system_features(EPYC)) == (False, "LLMOPS_GENERATION_LLAMACPP_WEIGHTS=file")
    assert choose("q8_0", Q4_1, none) == (True, "LLMOPS_GENERATION_LLAMACPP_WEIGHTS=q8_0 (file is Q4_1)")
    assert choose("q8_0", Q8_0, none) == (False, "the file is Q8_0 already")


def test_the_reason_names_the_file_type_as_llama_cpp_does() -> None:
    widen, reason = choose("auto", Q4_K_M, system_features(EPYC), "Q4_K - Medium")
    assert widen is False
    assert reason == "Q4_K - Medium weights have batched kernels here or are served as they are"


def test_extra_weight_layouts_are_off_where_llama_cpp_would_use_amx() -> None:
    on, reason = extra_buffers("auto", system_features(XEON_AMX))
    assert on is False and "AMX" in reason and "20824" in reason
    assert extra_buffers("auto", system_features(EPYC))[0] is True
    assert extra_buffers("auto", system_features(ARM))[0] is True
    assert extra_buffers("auto", system_features(XEON_AMX.replace("AMX_INT8 = 1", "AMX_INT8 = 0")))[0] is True


def test_the_extra_buffers_setting_overrides_the_cpu() -> None:
    setting = "LLMOPS_GENERATION_LLAMACPP_EXTRA_BUFFERS"
    assert extra_buffers("on", system_features(XEON_AMX)) == (True, f"{setting}=on")
    assert extra_buffers("off", system_features(EPYC)) == (False, f"{setting}=off")
