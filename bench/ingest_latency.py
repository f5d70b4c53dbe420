"""Submit-to-searchable latency of a single document at low load (p50 / p95).

Each round submits one small document carrying a unique token over gRPC and polls a keyword
search for that token until the document's chunk comes back. Target: p95 under 2 s.

    uv run python bench/ingest_latency.py [--n 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

import grpc
from bench_common import MD, ensure_stack, make_document, percentile

from llmops.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_kit import ports


async def one(ing: ingestion_pb2_grpc.IngestionServiceStub,
              vs: vectorstore_pb2_grpc.VectorStoreServiceStub, i: int) -> float:
    doc = make_document(f"lat-{uuid.uuid4().hex[:10]}", 80, seed=i)
    token = doc.document_id.replace("-", "")
    search = vectorstore_pb2.SearchRequest(
        query=token, top_k=1, mode=vectorstore_pb2.SEARCH_MODE_KEYWORD,
        filters=[vectorstore_pb2.MetadataFilter(key="document_id", equals=doc.document_id)])
    start = time.perf_counter()
    await ing.SubmitDocuments(ingestion_pb2.SubmitDocumentsRequest(documents=[doc]), metadata=MD)
    while True:
        if (await vs.Search(search, metadata=MD)).hits:
            return time.perf_counter() - start
        if time.perf_counter() - start > 30:
            raise SystemExit(f"{doc.document_id} not searchable after 30 s")
        await asyncio.sleep(0.01)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    await ensure_stack()
    async with grpc.aio.insecure_channel(ports.service_address("ingestion")) as c1, \
            grpc.aio.insecure_channel(ports.service_address("vector-store")) as c2:
        ing = ingestion_pb2_grpc.IngestionServiceStub(c1)
        vs = vectorstore_pb2_grpc.VectorStoreServiceStub(c2)
        await one(ing, vs, -1)  # warm-up
        samples = []
        for i in range(args.n):
            samples.append(await one(ing, vs, i))
            await asyncio.sleep(0.2)  # low load: one document at a time
    result = {
        "n": args.n,
        "p50_s": round(statistics.median(samples), 3),
        "p95_s": round(percentile(samples, 95), 3),
        "max_s": round(max(samples), 3),
        "target_p95_s": 2.0,
    }
    print(json.dumps(result) if args.json else
          f"submit-to-searchable over {args.n} documents: p50 {result['p50_s']} s, "
          f"p95 {result['p95_s']} s, max {result['max_s']} s (target p95 < 2 s)")


if __name__ == "__main__":
    asyncio.run(main())
