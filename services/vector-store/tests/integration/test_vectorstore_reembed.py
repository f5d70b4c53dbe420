"""Switching the embedding model on a real Weaviate, through a real embedding service.

The embedding service serves the English MiniLM (default) and the multilingual USE ("muse")
over gRPC; the vector-store's gRPC server runs the switch. The sample corpus is indexed for
two tenants with MiniLM; `SwitchEmbeddingModel(muse)` re-embeds it into a new collection
with Korean tokenization while searches keep answering from the old one, then switches.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_embedding.bootstrap import build_grpc as build_embedding_grpc
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_embedding.models import load_embedder
from llmops_embedding.settings import EncoderSettings
from llmops_embedding.settings import Settings as EmbeddingSettings
from llmops_kit.testing import error_reason
from llmops_vectorstore.adapters.embedding_client import EmbeddingClient
from llmops_vectorstore.bootstrap import build_collections, build_grpc, build_reembed
from llmops_vectorstore.domain.indexing import Indexer
from llmops_vectorstore.domain.layout import LayoutCache, ModelCollection
from llmops_vectorstore.domain.model import ChunkRecord, SearchMode, StoreQuery, VectorBatch
from llmops_vectorstore.domain.routing import RoutedStore
from llmops_vectorstore.domain.search import SearchService
from llmops_vectorstore.settings import EmbeddingClientSettings, Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[4]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MUSE = "google/universal-sentence-encoder-multilingual-3"
ADMIN = (("x-api-key", "dev-admin-key"),)
TENANT_ADMIN = (("x-api-key", "dev-key-acme"),)
KEYS = {"acme": (("x-api-key", "dev-key-acme"),), "globex": (("x-api-key", "dev-key-globex"),)}
KOREAN_QUESTION = "자기계발 지원금은 얼마인가요?"


QUESTIONS = json.loads((ROOT / "services/embedding/tests/data/retrieval_questions.json")
                       .read_text())["questions"]


async def recall(stub: Any, tenant: str, k: int = 3) -> dict[str, float]:
    """Per language: questions whose document is among the k best distinct documents of a
    hybrid search (the platform's default mode)."""
    found: dict[str, list[bool]] = {}
    for item in QUESTIONS:
        response = await stub.Search(vectorstore_pb2.SearchRequest(
            query=item["q"], mode=vectorstore_pb2.SEARCH_MODE_HYBRID, top_k=10),
            metadata=KEYS[tenant])
        docs = list(dict.fromkeys(h.document_id for h in response.hits))[:k]
        found.setdefault(item["lang"], []).append(item["doc"] in docs)
    return {lang: sum(hits) / len(hits) for lang, hits in found.items()}


# The documents the questions were written over (samples/corpus has grown since: its newer
# Korean documents also cover travel receipts and lost security keys, which would make some
# of these questions ambiguous).
QUESTION_DOCUMENTS = sorted({item["doc"] for item in QUESTIONS})


def corpus() -> list[tuple[str, list[str]]]:
    docs = []
    for path in (ROOT / "samples" / "corpus" / name for name in QUESTION_DOCUMENTS):
        text = re.sub(r"<[^>]+>", " ", path.read_text())
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
        docs.append((path.name, [p for p in paragraphs if len(p) > 20]))
    return docs


@pytest.fixture(scope="module")
async def embedding_address() -> AsyncIterator[str]:
    encoder = EncoderSettings(threads=2)
    service = EmbeddingService(await load_embedder(encoder),
                               [await load_embedder(encoder.for_model("muse"))])
    server = build_embedding_grpc(
        EmbeddingSettings(grpc_host="127.0.0.1", grpc_port=0, dev_mode=True), service)
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(0)


@pytest.fixture
async def platform(weaviate_server: dict, embedding_address: str) -> AsyncIterator[Any]:
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        grpc_host="127.0.0.1", grpc_port=0, dev_mode=True,
        api_keys="dev-key-acme=acme:admin,dev-key-globex=globex",
        collection=f"ReChunk{suffix}", documents_collection=f"ReDoc{suffix}",
        state_collection=f"ReState{suffix}", text_tokenization="kagome_kr",
        state_refresh_seconds=0.2, reembed_page_size=16,
        embedding=EmbeddingClientSettings(address=embedding_address, timeout_seconds=60),
    )
    collections, states, state = await build_collections(settings)
    layout = LayoutCache(states, settings.state_refresh_seconds)
    layout.set(state)
    embedder = EmbeddingClient(settings.embedding, background_key="dev-admin-key")
    store = RoutedStore(collections, layout, embedder)
    reembed = build_reembed(settings, collections, states, layout, embedder)
    server = build_grpc(settings, SearchService(store, embedder, settings.dimensions, store),
                        reembed)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield vectorstore_pb2_grpc.VectorStoreServiceStub(channel), store, embedder, collections
    finally:
        await reembed.stop()
        await channel.close()
        await server.stop(0)
        await embedder.close()
        for name in (settings.collection, f"{settings.collection}_{MUSE_SLUG}",
                     settings.documents_collection, settings.state_collection):
            await collections.client.collections.delete(name)
        await collections.close()


MUSE_SLUG = "google_universal_sentence_encoder_multilingual_3"


async def index_corpus(store: RoutedStore, embedder: EmbeddingClient, tenant: str,
                       docs: list[tuple[str, list[str]]]) -> int:
    total = 0
    for name, paragraphs in docs:
        vectors = await embedder.embed_texts(paragraphs, MINILM)
        chunks = [
            ChunkRecord(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{name}/{i}")), name, 1, i,
                        text, vector, title=name, model=MINILM)
            for i, (text, vector) in enumerate(zip(paragraphs, vectors, strict=True))
        ]
        await Indexer(store).apply_vectors(tenant, VectorBatch(name, 1, chunks, model=MINILM))
        total += len(chunks)
    return total


async def search(stub: Any, tenant: str, query: str) -> Any:
    return await stub.Search(vectorstore_pb2.SearchRequest(
        query=query, mode=vectorstore_pb2.SEARCH_MODE_VECTOR, top_k=3), metadata=KEYS[tenant])


async def test_switch_re_embeds_in_the_background_then_searches_use_the_new_model(platform):
    stub, store, embedder, collections = platform
    docs = corpus()
    *early, late = docs
    # globex: the whole corpus (recall is measured there); acme: all but one document,
    # which arrives while the re-embed runs.
    counts = {"acme": await index_corpus(store, embedder, "acme", early),
              "globex": await index_corpus(store, embedder, "globex", docs)}
    before = await search(stub, "acme", KOREAN_QUESTION)
    assert {h.model for h in before.hits} == {MINILM}
    recall_before = await recall(stub, "globex")

    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.SwitchEmbeddingModel(
            vectorstore_pb2.SwitchEmbeddingModelRequest(model="muse"), metadata=TENANT_ADMIN)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(denied.value) == "PLATFORM_ADMIN_REQUIRED"

    started = await stub.SwitchEmbeddingModel(
        vectorstore_pb2.SwitchEmbeddingModelRequest(model="muse"), metadata=ADMIN)
    assert (started.phase, started.active.model, started.target.model) == (
        "building", MINILM, MUSE)
    assert (started.target.dimensions, started.target.tokenization) == (512, "kagome_kr")
    # During the re-embed: searches answer from the old collection, and a document written
    # now lands in both collections.
    during = await search(stub, "acme", KOREAN_QUESTION)
    assert during.hits and {h.model for h in during.hits} == {MINILM}
    counts["acme"] += await index_corpus(store, embedder, "acme", [late])

    deadline = time.monotonic() + 300
    status = started
    while status.phase == "building" and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        status = await stub.GetEmbeddingStatus(vectorstore_pb2.GetEmbeddingStatusRequest(),
                                               metadata=ADMIN)
    assert (status.phase, status.active.model, status.previous_model, status.error) == (
        "idle", MUSE, MINILM, "")
    assert (status.tenants_total, status.tenants_done) == (2, 2)
    assert status.active.collection.endswith(MUSE_SLUG) and not status.HasField("target")

    await asyncio.sleep(0.3)  # past this replica's state cache
    base = status.active.collection.removesuffix(f"_{MUSE_SLUG}")
    for tenant, count in counts.items():
        new = await stub.Stats(vectorstore_pb2.StatsRequest(), metadata=KEYS[tenant])
        old = await collections.store(ModelCollection(MINILM, 384, base)).stats(tenant)
        assert (new.chunk_count, new.collection) == (count, status.active.collection)
        assert old.chunk_count == count
    after = await search(stub, "acme", KOREAN_QUESTION)
    assert {h.model for h in after.hits} == {MUSE}
    assert after.hits[0].document_id == "onboarding-ko.md"
    # Hybrid search (muse vectors, kagome_kr keywords) against MiniLM with word keywords.
    recall_after = await recall(stub, "globex")
    print(f"hybrid recall@3 before {recall_before}, after {recall_after}")
    assert recall_after["ko"] >= 0.8 > recall_before["ko"]
    assert recall_after["en"] >= recall_before["en"]
    # The document written during the re-embed is in the new collection too.
    late_hits = await search(stub, "acme", late[1][0])
    assert late_hits.hits[0].document_id == late[0]


async def test_kagome_kr_matches_korean_words_inside_inflected_forms(platform):
    _, store, embedder, collections = platform
    await index_corpus(store, embedder, "acme", corpus())
    active = (await store.layout.current()).active
    rows = [r async for page in collections.chunks(active, "acme", 100) for r in page]
    vectors = await embedder.embed_texts([r.text for r in rows], MINILM)
    hits = {}
    for tokenization in ("kagome_kr", "word"):
        c = ModelCollection(MINILM, 384, f"{active.collection}{tokenization.title()}",
                            tokenization)
        try:
            await collections.ensure(c)
            await collections.store(c).upsert_chunks(
                "acme", [replace(r, vector=v) for r, v in zip(rows, vectors, strict=True)])
            # "지원금" (allowance) appears only as "지원금을" (+ object particle) in the corpus.
            found = await collections.store(c).search(
                "acme", StoreQuery(SearchMode.KEYWORD, 3, text="지원금"))
            hits[tokenization] = [h.document_id for h in found]
        finally:
            await collections.client.collections.delete(c.collection)
    assert hits == {"kagome_kr": ["onboarding-ko.md"], "word": []}
