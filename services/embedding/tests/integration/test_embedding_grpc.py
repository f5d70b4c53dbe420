"""EmbeddingService over a real gRPC socket: auth, validation reasons, model info."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from llmops.embedding.v1 import embedding_pb2
from llmops_kit.testing import error_reason

pytestmark = pytest.mark.integration

KEY = (("x-api-key", "dev-key-acme"),)


async def test_embed(embedding_stub):
    response = await embedding_stub.Embed(
        embedding_pb2.EmbedRequest(texts=["what is retrieval augmented generation?", "한국어"]),
        metadata=KEY,
    )
    assert response.dimensions == 384 and response.model.endswith("all-MiniLM-L6-v2")
    assert len(response.vectors) == 2
    assert np.linalg.norm(response.vectors[0].values) == pytest.approx(1.0, abs=1e-5)


async def test_normalize_false_is_accepted(embedding_stub):
    response = await embedding_stub.Embed(
        embedding_pb2.EmbedRequest(texts=["hello"], normalize=False), metadata=KEY
    )
    # all-MiniLM-L6-v2 ends in its own Normalize module: unit length either way.
    assert np.linalg.norm(response.vectors[0].values) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        ([], "NO_TEXTS"),
        (["ok", " "], "EMPTY_TEXT"),
        (["x"] * 257, "TOO_MANY_TEXTS"),
        (["y" * 20_001], "TEXT_TOO_LONG"),
    ],
)
async def test_invalid_argument_reasons(embedding_stub, texts, expected):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await embedding_stub.Embed(embedding_pb2.EmbedRequest(texts=texts), metadata=KEY)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(info.value) == expected
    if expected == "EMPTY_TEXT":
        assert "texts[1]" in (info.value.details() or "")


async def test_needs_api_key(embedding_stub):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await embedding_stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]))
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_model_info(embedding_stub):
    info = await embedding_stub.GetModelInfo(embedding_pb2.GetModelInfoRequest(), metadata=KEY)
    assert (info.dimensions, info.max_seq_length) == (384, 256)
    assert info.backend == "sentence-transformers/torch/cpu"
