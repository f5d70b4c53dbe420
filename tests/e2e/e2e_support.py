"""Helpers for end-to-end tests on the real local stack: Kafka and Weaviate from the infra scripts,
the three services as separate processes, driven over gRPC and by an external Kafka producer.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import grpc
import pytest

from llmops.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_cli import stack

RUN_ID = uuid.uuid4().hex[:8]


@dataclass
class Stack:
    env: dict[str, str]
    keys: dict[str, str]  # tenant -> api key
    running: set[str] = field(default_factory=set)

    def spec(self, name: str) -> stack.ServiceSpec:
        return next(s for s in stack.SERVICES if s.name == name)

    def start(self, name: str, replica: int = 0) -> None:
        stack.start_service(self.spec(name), replica, env=self.env)
        self.running.add(f"{name}:{replica}")

    async def wait(self, name: str, replica: int = 0, timeout: float = 180) -> None:
        spec = self.spec(name)
        if not await stack.wait_healthy(spec.port + 100 * replica, timeout, spec.protocol):
            log = stack.llmops_home() / "logs" / f"{name}{'-' + str(replica) if replica else ''}.log"
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
            pytest.fail(f"{name} replica {replica} not healthy; log tail:\n{tail}")

    def kill(self, name: str, replica: int = 0) -> None:
        stack.stop_service(name, replica, kill=True)
        self.running.discard(f"{name}:{replica}")

    def stop_all(self) -> None:
        for item in list(self.running):
            name, replica = item.split(":")
            stack.stop_service(name, int(replica))
        self.running.clear()

    def md(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("x-api-key", self.keys[tenant]),)


def tenant_name(label: str) -> str:
    return f"e2e{RUN_ID}{label}"


STRICT_TENANT = tenant_name("strict")
# The fault tests each have a tenant of their own, so a test's exact counts never include
# another test's late work.
FAULT_TENANTS = {x: tenant_name(x) for x in ("fkill", "fpublish", "fkafka", "fweaviate",
                                               "freplicas")}
OBS_TENANT = tenant_name("obs")
# tests/e2e/test_training_loop.py: the tenant that turns continuous training on.
CT_TENANT = tenant_name("ct")
# Answers in hybrid mode (the rest of the answer path's tests are generative).
HYBRID_TENANT = tenant_name("hybrid")
TENANTS = [tenant_name(x) for x in ("a", "b", "faults", "kafka", "bench", "ask", "strict")] + \
    list(FAULT_TENANTS.values()) + [OBS_TENANT, CT_TENANT, HYBRID_TENANT]


@dataclass
class Stubs:
    ingestion: ingestion_pb2_grpc.IngestionServiceStub
    vector_store: vectorstore_pb2_grpc.VectorStoreServiceStub


async def wait_indexed(stubs: Stubs, md: tuple, doc_ids: list[str], timeout: float = 120
                       ) -> dict[str, ingestion_pb2.GetDocumentStatusResponse]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = set(doc_ids)
    last: dict[str, ingestion_pb2.GetDocumentStatusResponse] = {}
    while pending and loop.time() < deadline:
        for doc_id in list(pending):
            try:
                st = await stubs.ingestion.GetDocumentStatus(
                    ingestion_pb2.GetDocumentStatusRequest(document_id=doc_id), metadata=md,
                    timeout=5)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    continue
                raise
            last[doc_id] = st
            if st.state == ingestion_pb2.DOCUMENT_STATE_INDEXED:
                pending.discard(doc_id)
        if pending:
            await asyncio.sleep(0.25)
    assert not pending, f"not indexed within {timeout}s: {sorted(pending)[:10]} " \
                        f"(last states: {[str(last.get(d)) for d in sorted(pending)[:2]]})"
    return last


async def stats(stubs: Stubs, md: tuple) -> vectorstore_pb2.StatsResponse:
    return await stubs.vector_store.Stats(vectorstore_pb2.StatsRequest(), metadata=md, timeout=10)
