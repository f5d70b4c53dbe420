"""ObservabilityService over a real gRPC server on real chDB: keys and roles, tenant scope,
reasons in `x-error-reason`, rows as JSON values. The panels are a stand-in here (the
definitions are llmops_observability.panels); the stand-in runs real SQL on the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from clickhouse_connect.driver.client import Client
from google.protobuf import json_format

from llmops.observability.v1 import observability_pb2, observability_pb2_grpc
from llmops_kit import topics
from llmops_kit.settings import DEV_ADMIN_KEY
from llmops_kit.testing import error_reason
from llmops_observability.adapters.store import ClickHouseStore
from llmops_observability.api.mapping import MappingOptions, add_event
from llmops_observability.bootstrap import build_grpc, load_panels
from llmops_observability.ports import PanelCatalog
from llmops_observability.rows import Rows
from llmops_observability.settings import Settings

pytestmark = pytest.mark.integration

MEMBER = (("x-api-key", "dev-member-acme"),)
ADMIN = (("x-api-key", DEV_ADMIN_KEY),)


@dataclass(frozen=True)
class Panel:
    id: str = "answers.count"
    title: str = "Answers"
    dashboard: str = "answers"
    kind: str = "stat"
    unit: str = "short"
    description: str = "answers per tenant"


def run(client: Client, panel_id: str, *, since: datetime, until: datetime,
        interval_seconds: int, tenant: str | None) -> Any:
    if panel_id != Panel.id:
        raise KeyError(panel_id)
    sql = ("SELECT tenant, count() AS answers, max(ts) AS last FROM answers FINAL "
           "WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} "
           + ("AND tenant = {tenant:String} " if tenant is not None else "")
           + "GROUP BY tenant ORDER BY tenant")
    result = client.query(sql, parameters={"since": since, "until": until, "tenant": tenant})
    return type("Result", (), {
        "panel": Panel(), "columns": list(zip(result.column_names,
                                              [t.name for t in result.column_types],
                                              strict=True)),
        "rows": result.result_rows, "sql": sql})()


@pytest.fixture
async def stub(ch_client: Client, make: Any) -> AsyncIterator[Any]:
    rows = Rows()
    for tenant, n in (("acme", 2), ("globex", 3)):
        for _ in range(n):
            add_event(rows, topics.INFERENCE_COMPLETED, type(make)(tenant=tenant).answer(), None,
                      MappingOptions())
    await ClickHouseStore(ch_client).write(rows)
    server = build_grpc(Settings(grpc_host="127.0.0.1", grpc_port=0),
                        PanelCatalog({Panel.id: Panel()}, run), ch_client)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield observability_pb2_grpc.ObservabilityServiceStub(channel)
    finally:
        await server.stop(0)


def query(tenant: str = "", **kw: Any) -> observability_pb2.QueryPanelRequest:
    req = observability_pb2.QueryPanelRequest(panel_id=kw.get("panel_id", Panel.id),
                                              tenant=tenant)
    req.since.FromDatetime(kw.get("since", datetime(2026, 11, 30, tzinfo=UTC)))
    req.until.FromDatetime(kw.get("until", datetime(2026, 12, 1, tzinfo=UTC)))
    return req


async def test_a_member_gets_its_own_tenants_rows(stub: Any) -> None:
    resp = await stub.QueryPanel(query(), metadata=MEMBER, timeout=10)
    assert [(c.name, c.type) for c in resp.columns] == [
        ("tenant", "LowCardinality(String)"), ("answers", "UInt64"),
        ("last", "DateTime64(3, 'UTC')")]
    assert [json_format.MessageToDict(r) for r in resp.rows] == [
        ["acme", 2.0, "2026-11-30T12:00:00.250Z"]]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.QueryPanel(query("*"), metadata=MEMBER, timeout=10)
    assert (info.value.code(), error_reason(info.value)) == (
        grpc.StatusCode.PERMISSION_DENIED, "TENANT_FORBIDDEN")


async def test_an_admin_reads_every_tenant(stub: Any) -> None:
    resp = await stub.QueryPanel(query("*"), metadata=ADMIN, timeout=10)
    assert [json_format.MessageToDict(r)[:2] for r in resp.rows] == [["acme", 2.0],
                                                                     ["globex", 3.0]]
    one = await stub.QueryPanel(query("globex"), metadata=ADMIN, timeout=10)
    assert [json_format.MessageToDict(r)[:2] for r in one.rows] == [["globex", 3.0]]


@pytest.mark.parametrize(("kw", "code", "reason"), [
    ({"panel_id": "no.such"}, grpc.StatusCode.NOT_FOUND, "UNKNOWN_PANEL"),
    ({"since": datetime(2026, 12, 2, tzinfo=UTC)}, grpc.StatusCode.INVALID_ARGUMENT,
     "BAD_RANGE"),
    ({"since": datetime(2026, 12, 1, tzinfo=UTC) - timedelta(days=401)},
     grpc.StatusCode.INVALID_ARGUMENT, "RANGE_TOO_LONG"),
])
async def test_bad_requests_say_why(stub: Any, kw: dict[str, Any], code: grpc.StatusCode,
                                    reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.QueryPanel(query(**kw), metadata=MEMBER, timeout=10)
    assert (info.value.code(), error_reason(info.value)) == (code, reason)


async def test_calls_need_a_key(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListPanels(observability_pb2.ListPanelsRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    listed = await stub.ListPanels(observability_pb2.ListPanelsRequest(), metadata=MEMBER,
                                   timeout=10)
    assert [p.id for p in listed.panels] == [Panel.id]


def test_the_panel_definitions_are_loaded() -> None:
    import llmops_observability.panels as panels

    catalog = load_panels()
    assert catalog.panels is panels.PANELS and catalog.run is panels.run
