"""The bundled all-MiniLM-L6-v2 through the adapter: shape, norm, semantics."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


async def test_dimensions_and_unit_norm(st_embedder):
    vectors = await st_embedder.embed(["hello world", "a second, longer sentence about RAG"])
    assert st_embedder.dimensions == 384 and st_embedder.max_seq_length == 256
    assert [len(v) for v in vectors] == [384, 384]
    assert all(isinstance(x, float) for x in vectors[0])
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


async def test_normalize_flag_keeps_direction(st_embedder):
    (raw,) = await st_embedder.embed(["hello world"], normalize=False)
    (unit,) = await st_embedder.embed(["hello world"])
    assert cos(raw, unit) == pytest.approx(1.0, abs=1e-5)


async def test_similar_sentences_are_closer(st_embedder):
    cat, kitten, finance = await st_embedder.embed([
        "A cat is sitting on the mat.",
        "A kitten sits on a rug.",
        "Quarterly revenue grew by ten percent.",
    ])
    assert cos(cat, kitten) > cos(cat, finance) + 0.3


async def test_korean_text(st_embedder):
    sunny, sunny_paraphrase, stocks = await st_embedder.embed([
        "오늘 서울의 날씨는 맑습니다.",
        "서울은 오늘 날씨가 화창합니다.",
        "주식 시장이 크게 하락했다.",
    ])
    assert np.linalg.norm(sunny) == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.isfinite(sunny))
    assert cos(sunny, sunny_paraphrase) > cos(sunny, stocks) + 0.1


async def test_order_is_kept_across_slices_and_concurrent_calls(st_embedder):
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(40)]
    st_embedder._settings.slice_size = 16  # force several slices (restored below)
    try:
        together, alone = await asyncio.gather(
            st_embedder.embed(texts), st_embedder.embed([texts[33]])
        )
    finally:
        st_embedder._settings.slice_size = 1024
    assert cos(together[33], alone[0]) == pytest.approx(1.0, abs=1e-5)
    assert cos(together[0], together[1]) < 0.999
