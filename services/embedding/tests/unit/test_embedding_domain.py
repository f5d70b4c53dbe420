"""Embed request validation and batching (fake model)."""

from __future__ import annotations

import pytest

from llmops_embedding.domain.embedding import (
    MAX_TEXT_CHARS,
    MAX_TEXTS,
    EmbeddingService,
    validate_texts,
)
from llmops_kit.errors import InvalidArgument

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("texts", "reason", "detail"),
    [
        ([], "NO_TEXTS", ""),
        (["ok", "  \n"], "EMPTY_TEXT", "texts[1]"),
        (["ok", ""], "EMPTY_TEXT", "texts[1]"),
        (["x"] * (MAX_TEXTS + 1), "TOO_MANY_TEXTS", str(MAX_TEXTS)),
        (["ok", "ok", "y" * (MAX_TEXT_CHARS + 1)], "TEXT_TOO_LONG", "texts[2]"),
    ],
)
def test_invalid_texts(texts, reason, detail):
    with pytest.raises(InvalidArgument) as info:
        validate_texts(texts)
    assert info.value.reason == reason
    assert detail in info.value.message


def test_limits_are_inclusive():
    validate_texts(["x"] * MAX_TEXTS)
    validate_texts(["y" * MAX_TEXT_CHARS])


async def test_embed_reports_model_and_passes_normalize(embedder):
    service = EmbeddingService(embedder)
    result = await service.embed(["a", "bbb"], normalize=False)
    assert result.vectors == [[1.0, 1.0, 9.0], [3.0, 1.0, 9.0]]
    assert (result.model, result.dimensions) == ("fake-model", 3)


async def test_invalid_request_never_reaches_the_model(embedder):
    with pytest.raises(InvalidArgument):
        await EmbeddingService(embedder).embed(["fine", ""])
    assert embedder.calls == []


async def test_embed_many_is_one_model_call_split_back(embedder):
    service = EmbeddingService(embedder)
    out = await service.embed_many([["a", "bb"], ["ccc"], [], ["dddd"]])
    assert embedder.calls == [["a", "bb", "ccc", "dddd"]]
    assert [[v[0] for v in group] for group in out] == [[1.0, 2.0], [3.0], [], [4.0]]


async def test_model_info(embedder):
    info = EmbeddingService(embedder).model_info()
    assert (info.model, info.dimensions, info.max_seq_length, info.backend) == (
        "fake-model", 3, 128, "fake"
    )
