"""Crashes, slow hops and outages under load: each fault provably hits work in flight, and
afterwards ingestion's store and Weaviate hold exactly the expected chunks, each once."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time

import grpc
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from e2e_support import FAULT_TENANTS, Stack, Stubs, stats, wait_indexed
from fault_support import (
    TopicWatch,
    assert_exactly_once,
    document,
    document_counts,
    produce,
    producer_quota,
)
from llmops_cli import stack
from llmops_kit import events, topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]


async def in_flight(stubs: Stubs, md: tuple, ids: list[str]) -> tuple[int, int]:
    """(documents not yet INDEXED, chunks already confirmed) over `ids`, from ingestion."""
    counts = await document_counts(stubs, md, ids)
    pending = sum(1 for total, done in counts.values() if total == 0 or done < total)
    return pending, sum(done for _, done in counts.values())


async def kill_mid_flight(stack_: Stack, stubs: Stubs, md: tuple, name: str, ids: list[str],
                          base: int, at_least: int) -> int:
    """SIGKILLs `name` once Weaviate holds `at_least` of the new chunks while documents are
    still pending; returns the chunks indexed at the kill (the caller proves work was left)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    progress = 0
    while loop.time() < deadline:
        progress = (await stats(stubs, md)).chunk_count - base
        if progress >= at_least:
            break
        await asyncio.sleep(0.05)
    assert progress >= at_least, f"{name}: only {progress} chunks indexed in 120 s; no load"
    stack_.kill(name)
    pending, confirmed = await in_flight(stubs, md, ids) if name != "ingestion" else (-1, -1)
    print(f"\nkilled {name}: {progress} chunks in Weaviate, "
          f"{'?' if pending < 0 else pending} of {len(ids)} documents not yet indexed, "
          f"{'?' if confirmed < 0 else confirmed} chunks confirmed to ingestion")
    if pending >= 0:
        assert pending > 0, f"{name} was killed after all work was done; nothing was in flight"
    return progress


async def test_sigkill_each_service_mid_ingest(
    e2e_stack: Stack, stubs: Stubs, kafka: KafkaSettings
) -> None:
    tenant = FAULT_TENANTS["fkill"]
    md = e2e_stack.md(tenant)
    baseline = base = (await stats(stubs, md)).chunk_count
    all_ids: list[str] = []
    rounds: list[tuple[str, list[str], int]] = []
    for round_no, victim in enumerate(("embedding", "vector-store", "ingestion")):
        docs = [document(f"r{round_no}-doc-{i}", 25) for i in range(28)]  # ~700 chunks
        ids = [d.document_id for d in docs]
        all_ids += ids
        await produce(kafka, tenant, docs)
        at_kill = await kill_mid_flight(e2e_stack, stubs, md, victim, ids, base, 100)
        rounds.append((victim, ids, at_kill))
        await asyncio.sleep(1.0)
        e2e_stack.start(victim)
        await e2e_stack.wait(victim)
        if victim == "ingestion":  # now it can answer: the kill left work behind
            pending, _ = await in_flight(stubs, md, ids)
            print(f"ingestion back: {pending} of {len(ids)} documents still to index")
        # The round's backlog drains before the next round starts, so the next kill measures
        # progress on its own documents, not behind a restarted service's whole backlog.
        await wait_indexed(stubs, md, ids, timeout=420)
        base = (await stats(stubs, md)).chunk_count
    await assert_exactly_once(stubs, md, all_ids, baseline)
    for victim, ids, at_kill in rounds:  # the kill hit work in flight: chunks were still to come
        total = sum(c for c, _ in (await document_counts(stubs, md, ids)).values())
        print(f"{victim}: {at_kill} of {total} chunks were indexed when it was killed")
        assert at_kill < total


async def test_sigkill_ingestion_while_publishing_a_documents_chunks(
    e2e_stack: Stack, stubs: Stubs, kafka: KafkaSettings
) -> None:
    """Ingestion publishes a document as ten ChunksCreated events (8 chunks each, for this
    test) and a broker quota slows its producer down, so the kill lands between them: some are
    on the topic, the rest are not. The restarted ingestion (same settings) re-publishes the
    document, whose DocumentSubmitted offset was never committed, with the same event ids."""
    tenant = FAULT_TENANTS["fpublish"]
    md = e2e_stack.md(tenant)
    before = (await stats(stubs, md)).chunk_count
    e2e_stack.kill("ingestion")
    e2e_stack.env["LLMOPS_INGESTION_CHUNKS_PER_EVENT"] = "8"
    # The production default: a throttled produce response may take longer than the e2e
    # stack's shorter request timeout (conftest.py), which would turn the delay into an error.
    saved_timeout = e2e_stack.env["LLMOPS_KAFKA_REQUEST_TIMEOUT_MS"]
    e2e_stack.env["LLMOPS_KAFKA_REQUEST_TIMEOUT_MS"] = "30000"
    e2e_stack.start("ingestion")
    await e2e_stack.wait("ingestion")
    docs: list = []
    landed = False
    # The quota takes effect through the broker's config propagation and the producer may send
    # a document's first batches before it does: when a kill still finds every event on the
    # topic, the attempt is repeated with a new document and a tighter quota.
    for attempt, rate in enumerate((8 * 1024, 4 * 1024, 2 * 1024, 1024)):
        doc = document(f"mid-publish-{attempt}", 60)  # ~80 chunks, ~1 KB each
        docs.append(doc)
        key = events.document_key(tenant, doc.document_id)
        watch = TopicWatch(kafka, topics.CHUNKS_CREATED)
        await watch.start()
        await asyncio.to_thread(producer_quota, kafka, "ingestion", rate)
        await asyncio.sleep(1.0)  # the quota reaches the broker's request handling
        try:
            await produce(kafka, tenant, [doc])
            seen: list = []
            for _ in range(1500):
                seen = watch.keyed(key)
                if seen:
                    break
                await asyncio.sleep(0.02)
            assert seen, "ingestion published nothing for the document in 30 s"
            e2e_stack.kill("ingestion")
            await asyncio.sleep(2.0)  # what the broker had already received lands meanwhile
            published = {r.offset for r in watch.keyed(key)}
            total = events.CHUNKS_CREATED.message.FromString(seen[0].value).batch_count
            print(f"\nattempt {attempt} ({rate} B/s): killed ingestion with {len(published)} "
                  f"of {total} chunk events of {doc.document_id} on the topic")
            landed = 0 < len(published) < total
        finally:
            await asyncio.to_thread(producer_quota, kafka, "ingestion", None)
            await watch.stop()
            e2e_stack.kill("ingestion")
            e2e_stack.start("ingestion")  # still 8 chunks an event: the same events again
            await e2e_stack.wait("ingestion")
        if landed:
            break
    assert landed, "no kill landed mid-publish"
    n = await assert_exactly_once(stubs, md, [d.document_id for d in docs], before)
    assert n >= 60 * len(docs)
    e2e_stack.env.pop("LLMOPS_INGESTION_CHUNKS_PER_EVENT")
    e2e_stack.env["LLMOPS_KAFKA_REQUEST_TIMEOUT_MS"] = saved_timeout
    e2e_stack.kill("ingestion")
    e2e_stack.start("ingestion")
    await e2e_stack.wait("ingestion")


def infra(name: str, action: str) -> None:
    subprocess.run(["bash", str(REPO / "infra" / "scripts" / f"{name}.sh"), action],
                   check=True, timeout=300)


def rewinds(service: str) -> int:
    """How many times `service` rewound a batch for redelivery (its log says so)."""
    log = stack.llmops_home() / "logs" / f"{service}.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return len(re.findall(r"rewinding it for redelivery", text))


async def health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.aio.AioRpcError:
            return -1
        return int(reply.status)


@pytest.mark.parametrize(("dependency", "watched"), [("kafka", "embedding"),
                                                     ("weaviate", "vector-store")])
async def test_dependency_down_longer_than_the_retry_window(
    e2e_stack: Stack, stubs: Stubs, kafka: KafkaSettings, dependency: str, watched: str
) -> None:
    """The outage outlasts the consumers' retry window (LLMOPS_KAFKA_RETRY_WINDOW_SECONDS in
    the e2e stack): it lasts until the watched service has rewound a batch for redelivery;
    afterwards nothing was skipped or dead-lettered (exact counts)."""
    tenant = FAULT_TENANTS[f"f{dependency}"]
    md = e2e_stack.md(tenant)
    docs = [document(f"{dependency}-outage-{i}", 20) for i in range(20)]
    ids = [d.document_id for d in docs]
    before = (await stats(stubs, md)).chunk_count
    await produce(kafka, tenant, docs)
    for _ in range(600):
        if (await stats(stubs, md)).chunk_count > before + 50:
            break
        await asyncio.sleep(0.05)
    pending, _ = await in_flight(stubs, md, ids)
    print(f"\nstopping {dependency}: {pending} of {len(ids)} documents not yet indexed")
    assert pending > 0, "all work was done before the outage"
    rewound_before = rewinds(watched)  # only a rewind during the outage counts
    await asyncio.to_thread(infra, dependency, "stop")
    stopped = time.monotonic()
    try:
        # Down until the watched service has given up on a batch (its retry window, plus the
        # client's own timeout for the attempt in flight) and rewound it.
        for _ in range(180):
            if rewinds(watched) > rewound_before:
                break
            await asyncio.sleep(1)
        print(f"{watched} rewound a batch {time.monotonic() - stopped:.0f} s into the outage")
        assert rewinds(watched) > rewound_before, f"{watched} never rewound a batch"
        if dependency == "weaviate":
            status = await health(e2e_stack.spec("vector-store").port)
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING, (
                f"vector-store health during the Weaviate outage: {status}")
    finally:
        await asyncio.to_thread(infra, dependency, "start")
    await assert_exactly_once(stubs, md, ids, before)
    if dependency == "weaviate":
        status = await health(e2e_stack.spec("vector-store").port)
        assert status == health_pb2.HealthCheckResponse.SERVING


async def test_two_replicas_share_the_work(
    e2e_stack: Stack, stubs: Stubs, kafka: KafkaSettings
) -> None:
    e2e_stack.start("embedding", replica=1)
    await e2e_stack.wait("embedding", replica=1)
    try:
        admin = AIOKafkaAdminClient(**kafka.client_options())
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
        tenant = FAULT_TENANTS["freplicas"]
        md = e2e_stack.md(tenant)
        docs = [document(f"replicas-{i}", 10) for i in range(16)]
        before = (await stats(stubs, md)).chunk_count
        await produce(kafka, tenant, docs)
        await assert_exactly_once(stubs, md, [d.document_id for d in docs], before)
    finally:
        e2e_stack.kill("embedding", replica=1)
