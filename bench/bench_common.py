"""Shared by the benchmarks: bring the local stack up, make documents, read percentiles."""

from __future__ import annotations

import asyncio
import random
import statistics

from llmops.ingestion.v1 import ingestion_pb2
from llmops_cli import stack

TENANT = "default"
API_KEY = "dev-key-default"
MD = (("x-api-key", API_KEY),)
_VOCAB = ("platform kafka vector search embedding tenant chunk document version index query model "
          "latency throughput batch consumer producer offset partition replica cluster shard "
          "policy vacation expense security laptop password region export retention invoice "
          "customer contract renewal support ticket escalation manager approval budget").split()


async def ensure_stack() -> None:
    """Starts Kafka, Weaviate and the three services unless they already answer."""
    for name in stack.INFRA:
        await asyncio.to_thread(stack.infra, name, "start")
    for spec in stack.SERVICES:
        if await stack.health(spec.port, protocol=spec.protocol) != "SERVING":
            stack.start_service(spec)
    for spec in stack.SERVICES:
        if not await stack.wait_healthy(spec.port, 240, spec.protocol):
            raise SystemExit(f"{spec.name} is not healthy; see .llmops/logs/{spec.name}.log")


def make_document(doc_id: str, words: int, seed: int) -> ingestion_pb2.Document:
    rng = random.Random(seed)
    sentences = []
    while sum(len(s.split()) for s in sentences) < words:
        n = rng.randint(8, 18)
        sentences.append(" ".join(rng.choice(_VOCAB) for _ in range(n)).capitalize() + ".")
    text = f"{doc_id.replace('-', '')} " + " ".join(sentences)
    return ingestion_pb2.Document(document_id=doc_id, title=doc_id, source="bench",
                                  content_type=ingestion_pb2.CONTENT_TYPE_TEXT,
                                  content=text.encode())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]
