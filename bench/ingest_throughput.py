"""Documents per second from submission to searchable, against bare sentence-transformers.

The platform path: SubmitDocuments (gRPC) -> ingestion -> Kafka -> embedding -> Kafka ->
vector-store -> Weaviate, until every document is INDEXED. The baseline: the same chunk texts
encoded by SentenceTransformer in this process, same model, batch 64, with the platform idle.
The ratio (platform docs/s / bare docs/s) is what matters; target >= 0.8.

    uv run python bench/ingest_throughput.py [--docs 200] [--words 600] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid

import grpc
from bench_common import MD, ensure_stack, make_document

from llmops.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from llmops_ingestion.bootstrap import build_tokenizer
from llmops_ingestion.domain.chunking import ChunkingPolicy, chunk_document
from llmops_ingestion.domain.extract import normalize
from llmops_ingestion.settings import Settings as IngestionSettings
from llmops_kit import ports


def chunk_texts(docs: list[ingestion_pb2.Document]) -> list[str]:
    settings = IngestionSettings()
    tok = build_tokenizer(settings)
    policy = ChunkingPolicy(settings.chunk_tokens, settings.chunk_overlap_tokens)
    texts: list[str] = []
    for d in docs:
        chunks, _ = chunk_document("t", d.document_id, 1, normalize(d.content.decode()), tok, policy)
        texts += [c.text for c in chunks]
    return texts


def bare_encode_seconds(texts: list[str]) -> float:
    from sentence_transformers import SentenceTransformer

    from llmops_embedding.settings import Settings as EmbeddingSettings

    model = SentenceTransformer(str(EmbeddingSettings().encoder.path), device="cpu")
    model.encode(texts[:64], batch_size=64)  # warm-up
    start = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
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


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--words", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    await ensure_stack()
    ratios, platform_rates, bare_rates = [], [], []
    for r in range(args.rounds):
        run = uuid.uuid4().hex[:8]
        docs = [make_document(f"tp-{run}-{i}", args.words, seed=r * 100_000 + i)
                for i in range(args.docs)]
        texts = chunk_texts(docs)
        plat = await platform_seconds(docs)
        bare = await asyncio.to_thread(bare_encode_seconds, texts)
        platform_rates.append(args.docs / plat)
        bare_rates.append(args.docs / bare)
        ratios.append(bare / plat)
        print(f"round {r + 1}: {len(texts)} chunks; platform {args.docs / plat:.1f} docs/s "
              f"({len(texts) / plat:.0f} chunks/s), bare encode {args.docs / bare:.1f} docs/s "
              f"({len(texts) / bare:.0f} chunks/s), ratio {bare / plat:.2f}", flush=True)
    result = {
        "docs_per_round": args.docs,
        "median_platform_docs_per_s": round(statistics.median(platform_rates), 2),
        "median_bare_docs_per_s": round(statistics.median(bare_rates), 2),
        "median_ratio": round(statistics.median(ratios), 3),
        "target_ratio": 0.8,
    }
    print(json.dumps(result) if args.json else
          f"median: platform {result['median_platform_docs_per_s']} docs/s, bare "
          f"{result['median_bare_docs_per_s']} docs/s, ratio {result['median_ratio']} "
          f"(target >= 0.8)")


if __name__ == "__main__":
    asyncio.run(main())
