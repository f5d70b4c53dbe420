"""What the fault tests need besides the stack: documents of a known size, an external
producer, a watcher of a topic, client quotas that slow one service's producer down, and the
exact counts that must hold in ingestion's store and in Weaviate afterwards."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from e2e_support import Stubs, stats, wait_indexed
from llmops.ingestion.v1 import events_pb2, ingestion_pb2
from llmops.vectorstore.v1 import vectorstore_pb2
from llmops_kit import events, topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import REPO

WORDS = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
]


def document(doc_id: str, paragraphs: int) -> ingestion_pb2.Document:
    """~160 tokens per paragraph, so about one 200-token chunk per paragraph; a marker every
    20 words keeps every chunk distinct (nothing is dropped as a duplicate)."""
    tag = doc_id.replace("-", "")
    paras = []
    for p in range(paragraphs):
        words = [WORDS[(p * 7 + i) % len(WORDS)] for i in range(140)]
        for i in range(0, 140, 20):
            words[i] = f"{tag}x{p}x{i}"
        paras.append(" ".join(words) + ".")
    return ingestion_pb2.Document(document_id=doc_id, title=doc_id, source="fault-test",
                                  content_type=ingestion_pb2.CONTENT_TYPE_TEXT,
                                  content="\n\n".join(paras).encode())


async def produce(kafka: KafkaSettings, tenant: str, docs: list[ingestion_pb2.Document]) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all",
                                max_request_size=kafka.producer_max_request_size)
    await producer.start()
    try:
        await asyncio.gather(*(
            producer.send_and_wait(
                topics.DOCUMENT_SUBMITTED,
                events_pb2.DocumentSubmitted(
                    envelope=events.make_envelope("fault-test", tenant=tenant), document=d,
                ).SerializeToString(),
                key=events.document_key(tenant, d.document_id))
            for d in docs))
    finally:
        await producer.stop()


def kafka_tool(*args: str) -> None:
    """Runs one of the broker's own admin tools (the jars infra/scripts/kafka.sh resolved)."""
    home = os.environ.get("LLMOPS_HOME", str(REPO / ".llmops"))
    subprocess.run(["java", "-cp", f"{home}/kafka/libs/*", *args], check=True, timeout=120,
                   capture_output=True)


def producer_quota(kafka: KafkaSettings, client_id: str, bytes_per_second: int | None) -> None:
    """A broker-enforced produce quota for one client id (None removes it): the broker delays
    that client's produce responses, so publishing a large document takes seconds."""
    change = (["--add-config", f"producer_byte_rate={bytes_per_second}"] if bytes_per_second
              else ["--delete-config", "producer_byte_rate"])
    kafka_tool("org.apache.kafka.tools.ConfigCommand", "--bootstrap-server",
               kafka.bootstrap_servers, "--alter", *change, "--entity-type", "clients",
               "--entity-name", client_id)


@dataclass
class TopicWatch:
    """Collects, in the background, the records of `topic` produced after start()."""

    kafka: KafkaSettings
    topic: str
    records: list[Any] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(**self.kafka.client_options(), group_id=None,
                                          enable_auto_commit=False)
        admin = AIOKafkaAdminClient(**self.kafka.client_options())
        await admin.start()
        try:
            described = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        ids = sorted(p["partition"] for t in described for p in t.get("partitions", ()))
        if not ids:
            raise AssertionError(f"topic {self.topic} has no partitions")
        await self._consumer.start()
        parts = [TopicPartition(self.topic, p) for p in ids]
        self._consumer.assign(parts)
        ends = await self._consumer.end_offsets(parts)
        for tp, offset in ends.items():
            self._consumer.seek(tp, offset)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            for batch in (await self._consumer.getmany(timeout_ms=100)).values():
                self.records.extend(batch)

    def keyed(self, key: bytes) -> list[Any]:
        return [r for r in self.records if r.key == key]

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()


async def document_counts(stubs: Stubs, md: tuple, ids: Iterable[str]
                          ) -> dict[str, tuple[int, int]]:
    """document id -> (chunk_count, indexed_chunk_count) as ingestion's store reports them."""
    out = {}
    for doc_id in ids:
        try:
            st = await stubs.ingestion.GetDocumentStatus(
                ingestion_pb2.GetDocumentStatusRequest(document_id=doc_id), metadata=md,
                timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            out[doc_id] = (0, 0)  # submitted, not yet taken in by ingestion
            continue
        out[doc_id] = (st.chunk_count, st.indexed_chunk_count)
    return out


async def chunks_in_weaviate(stubs: Stubs, md: tuple, doc_id: str) -> list[str]:
    hits = await stubs.vector_store.Search(
        vectorstore_pb2.SearchRequest(
            # Hybrid, the platform's default: Weaviate's pure BM25 with a filter was seen to
            # miss re-written objects that its vector and hybrid search return.
            query="alpha bravo", top_k=100, mode=vectorstore_pb2.SEARCH_MODE_HYBRID,
            filters=[vectorstore_pb2.MetadataFilter(key="document_id", equals=doc_id)]),
        metadata=md, timeout=30)
    return [h.chunk_id for h in hits.hits]


async def assert_exactly_once(stubs: Stubs, md: tuple, ids: list[str], baseline: int,
                              timeout: float = 420) -> int:
    """Every document INDEXED; ingestion's store, Weaviate's total and each document's chunks
    agree exactly (nothing lost, nothing twice). `baseline`: the tenant's chunk count before
    these documents were produced. Returns the number of chunks."""
    states = await wait_indexed(stubs, md, ids, timeout=timeout)
    expected = sum(s.chunk_count for s in states.values())
    assert expected > 0
    counts = await document_counts(stubs, md, ids)
    not_exact = {d: c for d, c in counts.items() if c[0] != c[1]}
    assert not not_exact, f"ingestion's store: chunk vs indexed counts differ: {not_exact}"
    got = (await stats(stubs, md)).chunk_count - baseline
    assert got == expected, f"Weaviate holds {got} new chunks for {expected} expected"
    for doc_id in ids:
        chunk_ids = await chunks_in_weaviate(stubs, md, doc_id)
        assert len(chunk_ids) == len(set(chunk_ids)) == counts[doc_id][0], (
            f"{doc_id}: Weaviate has {len(chunk_ids)} hits ({len(set(chunk_ids))} distinct), "
            f"ingestion expects {counts[doc_id][0]}")
    return expected
