"""Crashes and restarts under load: every chunk ends up in Weaviate exactly once."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from e2e_support import Stack, Stubs, stats, tenant_name, wait_indexed
from llmops.ingestion.v1 import events_pb2, ingestion_pb2
from llmops.vectorstore.v1 import vectorstore_pb2
from llmops_kit import events, topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]
TENANT = tenant_name("faults")
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


async def produce(kafka: KafkaSettings, docs: list[ingestion_pb2.Document]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all",
                                max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        await asyncio.gather(*(
            producer.send_and_wait(
                topics.DOCUMENT_SUBMITTED,
                events_pb2.DocumentSubmitted(
                    envelope=events.make_envelope("fault-test", tenant=TENANT), document=d,
                ).SerializeToString(),
                key=events.document_key(TENANT, d.document_id))
            for d in docs))
    finally:
        await producer.stop()


async def expected_chunks(stubs: Stubs, md: tuple, ids: list[str]) -> int:
    states = await wait_indexed(stubs, md, ids, timeout=420)
    return sum(s.chunk_count for s in states.values())


async def assert_exactly_once(stubs: Stubs, md: tuple, ids: list[str], baseline: int) -> None:
    """`baseline`: the tenant's chunk count before these documents were produced."""
    total = await expected_chunks(stubs, md, ids)
    assert total > 0
    got = (await stats(stubs, md)).chunk_count - baseline
    assert got == total, f"Weaviate holds {got} new chunks for {total} expected"
    # Each document's chunks are all there, each once, all of the current version.
    for doc_id in ids[:3]:
        hits = await stubs.vector_store.Search(
            vectorstore_pb2.SearchRequest(
                query="alpha bravo", top_k=100,
                mode=vectorstore_pb2.SEARCH_MODE_KEYWORD,
                filters=[vectorstore_pb2.MetadataFilter(key="document_id", equals=doc_id)]),
            metadata=md)
        assert len({h.chunk_id for h in hits.hits}) == len(hits.hits)


async def kill_when_progressing(stack: Stack, stubs: Stubs, md: tuple, name: str,
                                at_least: int) -> None:
    """SIGKILLs `name` once the vector store holds at least `at_least` chunks (mid-flight)."""
    for _ in range(600):
        if (await stats(stubs, md)).chunk_count >= at_least:
            break
        await asyncio.sleep(0.1)
    stack.kill(name)


async def test_sigkill_each_service_mid_ingest(
    e2e_stack: Stack, stubs: Stubs, kafka: KafkaSettings
) -> None:
    md = e2e_stack.md(TENANT)
    baseline = base = (await stats(stubs, md)).chunk_count
    all_ids: list[str] = []
    for round_no, victim in enumerate(("embedding", "vector-store", "ingestion")):
        docs = [document(f"r{round_no}-doc-{i}", 25) for i in range(28)]  # ~700 chunks
        all_ids += [d.document_id for d in docs]
        await produce(kafka, docs)
        await kill_when_progressing(e2e_stack, stubs, md, victim, base + 100)
        await asyncio.sleep(1.0)
        e2e_stack.start(victim)
        await e2e_stack.wait(victim)
        base = (await stats(stubs, md)).chunk_count
    await assert_exactly_once(stubs, md, all_ids, baseline)


def infra(name: str, action: str) -> None:
    subprocess.run(["bash", str(REPO / "infra" / "scripts" / f"{name}.sh"), action],
                   check=True, timeout=300)


@pytest.mark.parametrize("dependency", ["kafka", "weaviate"])
async def test_dependency_restart_under_load(
    e2e_stack: Stack, stubs: Stubs, kafka: KafkaSettings, dependency: str
) -> None:
    md = e2e_stack.md(TENANT)
    docs = [document(f"{dependency}-restart-{i}", 20) for i in range(20)]
    before = (await stats(stubs, md)).chunk_count
    await produce(kafka, docs)
    for _ in range(300):
        if (await stats(stubs, md)).chunk_count > before + 50:
            break
        await asyncio.sleep(0.1)
    await asyncio.to_thread(infra, dependency, "stop")
    await asyncio.sleep(3)
    await asyncio.to_thread(infra, dependency, "start")
    await assert_exactly_once(stubs, md, [d.document_id for d in docs], before)


async def test_two_replicas_share_the_work(
    e2e_stack: Stack, stubs: Stubs, kafka: KafkaSettings
) -> None:
    e2e_stack.start("embedding", replica=1)
    await e2e_stack.wait("embedding", replica=1)
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
        await admin.start()
        try:
            members: list = []
            for _ in range(100):
                desc = await admin.describe_consumer_groups(["embedding"])
                members = desc[0].to_object()["groups"][0]["members"] if desc else []
                if len(members) >= 2:
                    break
                await asyncio.sleep(0.3)
            assert len(members) >= 2, "both replicas must join the 'embedding' group"
        finally:
            await admin.close()
        md = e2e_stack.md(TENANT)
        docs = [document(f"replicas-{i}", 10) for i in range(16)]
        before = (await stats(stubs, md)).chunk_count
        await produce(kafka, docs)
        await assert_exactly_once(stubs, md, [d.document_id for d in docs], before)
    finally:
        e2e_stack.kill("embedding", replica=1)
