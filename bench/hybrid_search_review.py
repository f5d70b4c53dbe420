"""Hybrid search settings reviewed on the evaluation set: alpha x fusion x question stopwords.

Makes a tenant of its own, ingests samples/corpus through the running stack (as
bench/answer_quality.py does), embeds each question once with the embedding service, then
runs every answerable question through the vector-store's own SearchService and WeaviateStore
(in this process, on the same Weaviate collections) once per setting, and prints recall@5 and
MRR per language and the rank of the security handbook for "What do I do if my laptop is lost
or stolen?". The settings are the vector-store's LLMOPS_VECTORSTORE_HYBRID__* (ALPHA, FUSION,
QUESTION_STOPWORDS).

    uv run python bench/hybrid_search_review.py [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
from collections.abc import Sequence
from typing import Any

import grpc
from answer_quality import delete_tenant, ingest, make_tenant
from bench_common import ensure_stack
from eval_set import Outcome, by_language, load, rank_of

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops_kit import ports
from llmops_vectorstore.adapters import weaviate_schema
from llmops_vectorstore.adapters.weaviate import WeaviateStore
from llmops_vectorstore.domain.model import SearchMode, SearchRequest
from llmops_vectorstore.domain.ranking import Fusion, HybridRanking
from llmops_vectorstore.domain.search import SearchService
from llmops_vectorstore.settings import Settings

ALPHAS = (0.0, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0)
LAPTOP = "What do I do if my laptop is lost or stolen?"


class GivenVectors:
    """The QueryEmbedder port over vectors embedded beforehand (one call per question)."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    async def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


async def embed(md: tuple[tuple[str, str], ...], texts: Sequence[str]) -> dict[str, list[float]]:
    async with grpc.aio.insecure_channel(ports.service_address("embedding")) as ch:
        resp = await embedding_pb2_grpc.EmbeddingServiceStub(ch).Embed(
            embedding_pb2.EmbedRequest(texts=list(texts)), metadata=md, timeout=120)
    return {t: list(v.values) for t, v in zip(texts, resp.vectors, strict=True)}


async def review(args: argparse.Namespace) -> list[dict[str, Any]]:
    questions = [q for q in load() if q.answerable]
    admin_key = os.environ.get("LLMOPS_ADMIN_KEY") or "dev-admin-key"
    if not args.no_stack:
        await ensure_stack()
    tenant, api_key = await make_tenant(admin_key)
    settings = Settings()
    client = await weaviate_schema.connect(settings.weaviate, 30)
    store = WeaviateStore(client, settings.collection, settings.documents_collection)
    rows: list[dict[str, Any]] = []
    try:
        await ingest(tenant, api_key)
        vectors = await embed((("x-api-key", api_key),), [q.question for q in questions])
        for alpha, fusion, stop in itertools.product(ALPHAS, Fusion, (False, True)):
            ranking = HybridRanking(alpha, fusion, stop)
            service = SearchService(store, GivenVectors(vectors), settings.dimensions,
                                    ranking=ranking)
            outcomes = []
            for q in questions:
                hits = (await service.search(tenant, SearchRequest(
                    query=q.question, top_k=5, mode=SearchMode.HYBRID))).hits
                outcomes.append(Outcome(q, [h.document_id for h in hits]))
            scores = by_language(outcomes)
            laptop = next(o for o in outcomes if o.question.question == LAPTOP)
            rows.append({
                "alpha": alpha, "fusion": fusion.value, "question_stopwords": stop,
                **{f"recall@5_{k}": s.recall_at_5 for k, s in scores.items()},
                **{f"mrr_{k}": s.mrr for k, s in scores.items()},
                "laptop_rank": rank_of(laptop),
            })
    finally:
        await client.close()
        await delete_tenant(admin_key, tenant)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-stack", action="store_true", help="do not start the local stack")
    args = ap.parse_args()
    rows = asyncio.run(review(args))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("alpha | fusion | stopwords | recall@5 en | ko | all | MRR en | ko | all | laptop rank")
    for r in sorted(rows, key=lambda r: (-r["mrr_all"], -r["recall@5_all"])):
        print(f"{r['alpha']:.2f} | {r['fusion']:14} | {'on ' if r['question_stopwords'] else 'off'}"
              f" | {r['recall@5_en']:.2f} | {r['recall@5_ko']:.2f} | {r['recall@5_all']:.2f}"
              f" | {r['mrr_en']:.3f} | {r['mrr_ko']:.3f} | {r['mrr_all']:.3f}"
              f" | {r['laptop_rank'] or '-'}")


if __name__ == "__main__":
    main()
