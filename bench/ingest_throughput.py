"""Documents per second through the platform (fast encoder) against bare PyTorch encoding.

Phase A, bare: the chunk texts the platform makes of the documents, encoded by
SentenceTransformer (PyTorch) in this process, with the embedding service's batch size.
Phase B, platform: the same documents through SubmitDocuments (gRPC) -> ingestion -> Kafka ->
embedding (its configured backend, by default the fastest export that matches PyTorch) ->
Kafka -> vector-store -> Weaviate, until every document is INDEXED.
Both phases get the same warm-up (the chunks of --warmup-docs documents) and the same
--repeats; every timed run starts with the stack idle (Kafka lag 0 on the document path's
consumer groups and the stack's processes under 0.15 cores for 2 s; see stack_idle.py).
Each repeat uses fresh documents (new ids and text) so nothing downstream can skip work;
phase A encodes exactly the chunks phase B sends. Every figure printed is a median.

ratio = platform docs/s / bare PyTorch docs/s (target >= 1.5). cosine = the embedding
service's vectors (gRPC Embed) for a sample of those chunks against PyTorch's.

    uv run python bench/ingest_throughput.py [--docs 200] [--words 600] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from typing import Any

import grpc
import numpy as np
from bench_common import MD, ensure_stack, make_document
from stack_idle import Idle, wait_idle

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from llmops_ingestion.bootstrap import build_tokenizer
from llmops_ingestion.domain.chunking import ChunkingPolicy, chunk_document
from llmops_ingestion.domain.extract import normalize
from llmops_ingestion.settings import Settings as IngestionSettings
from llmops_kit import ports
from llmops_kit.settings import KafkaSettings

TARGET_RATIO = 1.5
TARGET_COSINE = 0.999
# The consumer groups on the document path (ingestion, embedding, vector-store, status).
GROUPS = ("ingestion", "embedding", "vector-store", "ingestion-status")
COSINE_SAMPLE = 256


def chunk_texts(docs: list[ingestion_pb2.Document]) -> list[str]:
    settings = IngestionSettings()
    tok = build_tokenizer(settings)
    policy = ChunkingPolicy(settings.chunk_tokens, settings.chunk_overlap_tokens)
    texts: list[str] = []
    for d in docs:
        chunks, _ = chunk_document("t", d.document_id, 1, normalize(d.content.decode()), tok, policy)
        texts += [c.text for c in chunks]
    return texts


class Bare:
    """PyTorch sentence-transformers, exactly as the torch backend of the service runs it."""

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        from llmops_embedding.settings import EncoderSettings

        encoder = EncoderSettings()
        self.batch_size = encoder.batch_size
        self.model = SentenceTransformer(str(encoder.path), device=encoder.device)

    def encode(self, texts: list[str]) -> Any:
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)

    def seconds(self, texts: list[str]) -> float:
        start = time.perf_counter()
        self.encode(texts)
        return time.perf_counter() - start


async def platform_seconds(docs: list[ingestion_pb2.Document]) -> float:
    async with grpc.aio.insecure_channel(ports.service_address("ingestion")) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        start = time.perf_counter()
        for i in range(0, len(docs), 50):
            await stub.SubmitDocuments(
                ingestion_pb2.SubmitDocumentsRequest(documents=docs[i:i + 50]), metadata=MD)
        # Poll in submission order and stop at the first document not yet indexed, so the
        # measurement itself costs the platform a few RPCs per second, not thousands.
        pending = [d.document_id for d in docs]
        while pending:
            st = await stub.GetDocumentStatus(
                ingestion_pb2.GetDocumentStatusRequest(document_id=pending[0]), metadata=MD)
            if st.state == ingestion_pb2.DOCUMENT_STATE_INDEXED:
                pending.pop(0)
            else:
                await asyncio.sleep(0.1)
        return time.perf_counter() - start


async def service_vectors(texts: list[str]) -> tuple[str, np.ndarray]:
    """The running embedding service's backend and its vectors for `texts`."""
    async with grpc.aio.insecure_channel(ports.service_address("embedding")) as ch:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(ch)
        info = await stub.GetModelInfo(embedding_pb2.GetModelInfoRequest(), metadata=MD)
        vectors: list[list[float]] = []
        for i in range(0, len(texts), 128):
            resp = await stub.Embed(embedding_pb2.EmbedRequest(texts=texts[i:i + 128]),
                                    metadata=MD)
            vectors += [list(v.values) for v in resp.vectors]
        return info.backend, np.asarray(vectors, dtype=np.float32)


def documents(run: str, label: str, count: int, words: int, seed: int) -> list[Any]:
    return [make_document(f"tp-{run}-{label}-{i}", words, seed=seed + i) for i in range(count)]


async def idle(kafka: KafkaSettings, what: str) -> Idle:
    state = await wait_idle(kafka, GROUPS)
    print(f"  before {what}: {state}", flush=True)
    return state


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--words", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup-docs", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    await ensure_stack()
    kafka = KafkaSettings()
    bare = await asyncio.to_thread(Bare)
    run = uuid.uuid4().hex[:8]

    warm = documents(run, "warm", args.warmup_docs, args.words, seed=9_000_000)
    await asyncio.to_thread(bare.encode, chunk_texts(warm))
    await platform_seconds(warm)

    bare_rates, platform_rates, ratios, chunk_counts, settled = [], [], [], [], []
    first_texts: list[str] = []
    for r in range(args.repeats):
        docs = documents(run, f"r{r}", args.docs, args.words, seed=r * 100_000)
        texts = chunk_texts(docs)
        first_texts = first_texts or texts
        settled.append((await idle(kafka, f"repeat {r + 1} bare PyTorch")).settled)
        bare_s = await asyncio.to_thread(bare.seconds, texts)
        settled.append((await idle(kafka, f"repeat {r + 1} platform")).settled)
        plat_s = await platform_seconds(docs)
        bare_rates.append(args.docs / bare_s)
        platform_rates.append(args.docs / plat_s)
        ratios.append(bare_s / plat_s)
        chunk_counts.append(len(texts))
        print(f"repeat {r + 1}: {len(texts)} chunks; bare PyTorch {args.docs / bare_s:.2f} docs/s "
              f"({len(texts) / bare_s:.1f} chunks/s), platform {args.docs / plat_s:.2f} docs/s "
              f"({len(texts) / plat_s:.1f} chunks/s), ratio {bare_s / plat_s:.2f}", flush=True)

    sample = first_texts[:: max(1, len(first_texts) // COSINE_SAMPLE)][:COSINE_SAMPLE]
    backend, served = await service_vectors(sample)
    reference = await asyncio.to_thread(bare.encode, sample)
    cos = np.sum(served * reference, axis=1) / (
        np.linalg.norm(served, axis=1) * np.linalg.norm(reference, axis=1))
    result = {
        "backend": backend,
        "docs_per_repeat": args.docs,
        "chunks_per_repeat": int(statistics.median(chunk_counts)),
        "repeats": args.repeats,
        "median_bare_torch_docs_per_s": round(statistics.median(bare_rates), 3),
        "median_platform_docs_per_s": round(statistics.median(platform_rates), 3),
        "median_ratio": round(statistics.median(ratios), 3),
        "target_ratio": TARGET_RATIO,
        "cosine_to_torch_median": round(float(np.median(cos)), 6),
        "cosine_to_torch_min": round(float(np.min(cos)), 6),
        "target_cosine": TARGET_COSINE,
        "stack_idle_every_phase": all(settled),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"embedding backend: {backend}")
    print(f"median: bare PyTorch {result['median_bare_torch_docs_per_s']} docs/s, platform "
          f"{result['median_platform_docs_per_s']} docs/s, ratio {result['median_ratio']} "
          f"(target >= {TARGET_RATIO})")
    print(f"cosine to PyTorch over {len(sample)} chunks: median "
          f"{result['cosine_to_torch_median']}, min {result['cosine_to_torch_min']} "
          f"(target >= {TARGET_COSINE}); stack idle before every phase: "
          f"{result['stack_idle_every_phase']}")


if __name__ == "__main__":
    asyncio.run(main())
