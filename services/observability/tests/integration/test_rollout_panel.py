"""The canary analysis' panel (`rollout.version_metrics`) on real chDB, read over a real
ObservabilityService gRPC server by the model registry's adapter (ObservabilityMetrics), the
way the registry's canary controller reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from llmops.inference.v1 import inference_pb2
from llmops_kit import topics
from llmops_kit.settings import DEV_ADMIN_KEY
from llmops_observability.adapters.store import ClickHouseStore
from llmops_observability.api.mapping import MappingOptions, add_event
from llmops_observability.bootstrap import build_grpc, load_panels
from llmops_observability.panels import PANELS
from llmops_observability.panels.rollout import VERSION_METRICS
from llmops_observability.rows import Rows
from llmops_observability.settings import Settings
from llmops_registry.adapters.observability_metrics import ObservabilityMetrics
from llmops_registry.domain.canary import VersionMetrics

pytestmark = pytest.mark.integration

BLOCK = inference_pb2.SAFETY_OUTCOME_BLOCK


@pytest.fixture
async def address(ch_client: Client, make: Any) -> AsyncIterator[str]:
    rows = Rows()

    def add(event: Any, topic: str = topics.INFERENCE_COMPLETED) -> None:
        add_event(rows, topic, event, None, MappingOptions())

    # Production v1: 10 answers, 100..1000 ms, groundedness 0.8, one negative rating.
    for i in range(10):
        add(make.answer(f"p{i}", model_version="m@1", total_ms=100.0 * (i + 1),
                        groundedness=0.8))
    add(make.feedback("p0", rating=-1), topics.FEEDBACK_SUBMITTED)
    # Candidate v2: 6 generated answers (2 failed generations, 1 output block), plus one
    # blocked input (not the model's failure) and one cached answer (left out).
    for i in range(6):
        add(make.answer(f"c{i}", model_version="m@2", total_ms=2000.0 + i, groundedness=0.5,
                        error="GENERATION_UNAVAILABLE" if i < 2 else "",
                        output_safety=BLOCK if i == 2 else inference_pb2.SAFETY_OUTCOME_ALLOW))
    add(make.answer("c-in", model_version="m@2", error="INPUT_BLOCKED", total_ms=2003.0))
    add(make.answer("c-cached", model_version="m@2", cached=True, total_ms=1.0))
    for i in (3, 4):
        add(make.feedback(f"c{i}", rating=-1), topics.FEEDBACK_SUBMITTED)
    add(make.feedback("c5", rating=1), topics.FEEDBACK_SUBMITTED)
    # Another model and another tenant are not counted.
    add(make.answer("o1", model_version="other@2"))
    add(type(make)(tenant="globex").answer("g1", model_version="m@2"))
    await ClickHouseStore(ch_client).write(rows)
    server = build_grpc(Settings(grpc_host="127.0.0.1", grpc_port=0), load_panels(), ch_client)
    port = await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def test_per_version_metrics_of_one_tenant_in_a_window(address: str, make: Any) -> None:
    assert VERSION_METRICS in PANELS
    metrics = ObservabilityMetrics(address, DEV_ADMIN_KEY, 30.0)
    try:
        got = await metrics.window("acme", "m", make.when - timedelta(minutes=1),
                                   make.when + timedelta(minutes=1))
        empty = await metrics.window("acme", "m", make.when + timedelta(minutes=5),
                                     make.when + timedelta(minutes=6))
    finally:
        await metrics.close()
    assert set(got) == {1, 2}
    prod, cand = got[1], got[2]
    assert prod.requests == 10 and prod.errors == 0 and prod.safety_blocks == 0
    assert prod.p95_latency_ms == pytest.approx(955.0)  # linear between 900 and 1000
    assert prod.groundedness == pytest.approx(0.8) and prod.negative_feedback == 1
    assert (cand.requests, cand.errors, cand.safety_blocks, cand.negative_feedback) == (
        7, 2, 1, 2)
    assert cand.groundedness == pytest.approx(0.5)
    assert cand.p95_latency_ms > 2000.0
    assert empty == {}
    assert isinstance(prod, VersionMetrics)
