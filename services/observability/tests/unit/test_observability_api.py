"""The panel API without a server: scopes, ranges, cell values; and the writer's batches."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf import json_format

from llmops.observability.v1 import observability_pb2
from llmops_kit import topics
from llmops_kit.auth import Principal, Role, acting_as
from llmops_kit.errors import InvalidArgument, NotFound, PermissionDenied
from llmops_kit.kafka import Batch, Received
from llmops_observability.api.events import Writer
from llmops_observability.api.grpc import ObservabilityServicer, time_range, value_pb
from llmops_observability.api.mapping import MappingOptions
from llmops_observability.ports import PanelCatalog
from llmops_observability.rows import Rows

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class StandInPanel:
    id: str
    title: str = "Answers"
    dashboard: str = "answers"
    kind: str = "timeseries"
    unit: str = "ms"
    description: str = ""


class BadParameter(ValueError):
    """Like panels.MacroError: a ValueError with a stable reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


@dataclass
class StandInPanels:
    """Stands in for llmops_observability.panels (run records its arguments)."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def catalog(self) -> PanelCatalog:
        panels = {p.id: p for p in (StandInPanel("answers.latency"),
                                    StandInPanel("safety.findings", dashboard="safety"))}
        return PanelCatalog(panels, self.run)

    def run(self, client: Any, panel_id: str, **kw: Any) -> Any:
        self.calls.append({"panel_id": panel_id, **kw})
        if kw["tenant"] == "bad tenant":
            raise BadParameter("BAD_TENANT", "tenant ids are printable")
        return SimpleNamespace(
            panel=StandInPanel(panel_id), columns=[("t", "DateTime64(3)"), ("p95", "Float64")],
            rows=[(datetime(2026, 12, 1, 11, 0), 12.5), (datetime(2026, 12, 1, 11, 1), None)],
            sql="SELECT 1")


def request(**kw: Any) -> observability_pb2.QueryPanelRequest:
    req = observability_pb2.QueryPanelRequest(panel_id=kw.pop("panel_id", "answers.latency"),
                                              tenant=kw.pop("tenant", ""),
                                              interval_seconds=kw.pop("interval", 0))
    if "since" in kw:
        req.since.FromDatetime(kw.pop("since"))
    if "until" in kw:
        req.until.FromDatetime(kw.pop("until"))
    return req


def test_cells_become_json_values() -> None:
    row = [value_pb(v) for v in (datetime(2026, 12, 1, 10, 0, 0, 5000), 3, 2.5,
                                 Decimal("1.5"), None, float("nan"), "x", True,
                                 [1, 2], {"a": 1}, date(2026, 12, 1))]
    assert [json_format.MessageToDict(v) for v in row] == [
        "2026-12-01T10:00:00.005Z", 3.0, 2.5, 1.5, None, None, "x", True, [1.0, 2.0],
        {"a": 1.0}, "2026-12-01"]


def test_a_range_defaults_to_the_last_24_hours_in_about_100_buckets() -> None:
    since, until, interval = time_range(request(), NOW)
    assert (until, until - since, interval) == (NOW, timedelta(hours=24), 864)
    _, _, given = time_range(request(interval=60), NOW)
    assert given == 60


@pytest.mark.parametrize(("kw", "reason"), [
    ({"since": NOW, "until": NOW - timedelta(hours=1)}, "BAD_RANGE"),
    ({"since": NOW - timedelta(days=401), "until": NOW}, "RANGE_TOO_LONG"),
    ({"since": NOW - timedelta(minutes=1), "until": NOW, "interval": 3600}, "BAD_INTERVAL"),
])
def test_a_bad_range_is_invalid_with_a_reason(kw: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        time_range(request(**kw), NOW)
    assert info.value.reason == reason


async def test_a_member_reads_its_own_tenant_only() -> None:
    panels = StandInPanels()
    api = ObservabilityServicer(panels.catalog(), client=None)  # type: ignore[arg-type]
    with acting_as(Principal("acme", Role.MEMBER)):
        resp = await api.QueryPanel(request(), None)  # type: ignore[arg-type]
        assert panels.calls[-1]["tenant"] == "acme"
        for other in ("globex", "*"):
            with pytest.raises(PermissionDenied) as info:
                await api.QueryPanel(request(tenant=other), None)  # type: ignore[arg-type]
            assert info.value.reason == "TENANT_FORBIDDEN"
    assert [c.name for c in resp.columns] == ["t", "p95"]
    assert [json_format.MessageToDict(r) for r in resp.rows] == [
        ["2026-12-01T11:00:00.000Z", 12.5], ["2026-12-01T11:01:00.000Z", None]]
    assert (resp.panel.id, resp.sql) == ("answers.latency", "SELECT 1")


async def test_an_admin_reads_any_tenant_or_all() -> None:
    panels = StandInPanels()
    api = ObservabilityServicer(panels.catalog(), client=None)  # type: ignore[arg-type]
    with acting_as(Principal("ops", Role.ADMIN)):
        await api.QueryPanel(request(tenant="globex"), None)  # type: ignore[arg-type]
        await api.QueryPanel(request(tenant="*"), None)  # type: ignore[arg-type]
    assert [c["tenant"] for c in panels.calls] == ["globex", None]


async def test_a_panel_parameter_refused_by_the_panels_is_invalid() -> None:
    api = ObservabilityServicer(StandInPanels().catalog(), client=None)  # type: ignore[arg-type]
    with acting_as(Principal("ops", Role.ADMIN)), pytest.raises(InvalidArgument) as info:
        await api.QueryPanel(request(tenant="bad tenant"), None)  # type: ignore[arg-type]
    assert (info.value.reason, info.value.message) == ("BAD_TENANT", "tenant ids are printable")


async def test_unknown_panels_are_not_found_and_panels_list_by_dashboard() -> None:
    api = ObservabilityServicer(StandInPanels().catalog(), client=None)  # type: ignore[arg-type]
    with acting_as(Principal("acme", Role.MEMBER)), pytest.raises(NotFound) as info:
        await api.QueryPanel(request(panel_id="nope"), None)  # type: ignore[arg-type]
    assert info.value.reason == "UNKNOWN_PANEL"
    every = await api.ListPanels(observability_pb2.ListPanelsRequest(), None)  # type: ignore[arg-type]
    safety = await api.ListPanels(observability_pb2.ListPanelsRequest(dashboard="safety"),
                                  None)  # type: ignore[arg-type]
    assert [p.id for p in every.panels] == ["answers.latency", "safety.findings"]
    assert [p.id for p in safety.panels] == ["safety.findings"]


# ------------------------------------------------------------------ the writer


@dataclass
class FakeStore:
    calls: list[tuple[str, Any]] = field(default_factory=list)
    written: list[Rows] = field(default_factory=list)

    async def write(self, rows: Rows) -> dict[str, int]:
        self.calls.append(("write", {t: len(c[0]) for t, _, c in rows.tables()}))
        self.written.append(rows)
        return {}

    deleted: dict[str, datetime] = field(default_factory=dict)

    async def delete_tenant(self, tenant: str, deleted_at: datetime) -> int:
        self.calls.append(("delete_tenant", tenant))
        self.deleted[tenant] = deleted_at
        return 0

    async def deleted_tenants(self) -> dict[str, datetime]:
        return dict(self.deleted)

    async def delete_document(self, tenant: str, document_id: str, up_to_version: int) -> int:
        self.calls.append(("delete_document", (tenant, document_id, up_to_version)))
        return 0


@dataclass
class FakeBus:
    dead: list[tuple[Any, str]] = field(default_factory=list)

    async def dead_letter(self, record: Any, error: Any, group: str) -> None:
        self.dead.append((record, error.reason))


def batch(bus: FakeBus, pairs: list[tuple[str, Any]], as_record: Any) -> Batch[Any]:
    items = [Received(ev, as_record(topic, ev, offset=i)) for i, (topic, ev) in enumerate(pairs)]
    return Batch(items, bus, "observability")  # type: ignore[arg-type]


async def test_one_insert_per_batch_then_deletions_after_it(make: Any, as_record: Any) -> None:
    store, bus = FakeStore(), FakeBus()
    writer = Writer(store, MappingOptions(corpus_sample_rate=1.0))
    await writer.on_batch(batch(bus, [
        (topics.INFERENCE_COMPLETED, make.answer()),
        (topics.INFERENCE_COMPLETED, make.answer()),
        (topics.DOCUMENT_DELETED, make.doc_deleted("doc-9", up_to=2)),
        (topics.TENANT_DELETED, make.tenant_deleted("globex")),
    ], as_record))
    assert store.calls == [
        ("write", {"events": 4, "answers": 2, "scores": 6, "document_events": 1}),
        ("delete_document", ("acme", "doc-9", 2)),
        ("delete_tenant", "globex"),
    ]


async def test_a_tenant_deletion_without_a_tenant_is_dead_lettered(make: Any,
                                                                  as_record: Any) -> None:
    store, bus = FakeStore(), FakeBus()
    await Writer(store, MappingOptions()).on_batch(batch(bus, [
        (topics.TENANT_DELETED, make.tenant_deleted("")),
    ], as_record))
    assert [reason for _, reason in bus.dead] == ["MISSING_TENANT_ID"]
    assert store.calls == []


def test_nan_is_not_a_number_cell() -> None:
    assert json_format.MessageToDict(value_pb(math.inf)) is None


async def test_events_of_a_deleted_tenant_from_before_its_deletion_are_dropped(
        make: Any, as_record: Any) -> None:
    store, bus = FakeStore(), FakeBus()
    writer = Writer(store, MappingOptions())
    globex = type(make)(tenant="globex")
    await writer.on_batch(batch(bus, [(topics.TENANT_DELETED, globex.tenant_deleted("globex"))],
                                as_record))
    assert store.deleted == {"globex": make.when}
    late = type(make)(tenant="globex", when=make.when - timedelta(seconds=1))
    again = type(make)(tenant="globex", when=make.when + timedelta(seconds=1))
    await writer.on_batch(batch(bus, [
        (topics.INFERENCE_COMPLETED, late.answer(event_id="late")),
        (topics.INFERENCE_COMPLETED, again.answer(event_id="new")),
        (topics.INFERENCE_COMPLETED, make.answer(event_id="acme")),
    ], as_record))
    assert [r["id"] for r in store.written[-1].rows("answers")] == ["new", "acme"]
    assert {r["id"] for r in store.written[-1].rows("events")} == {"new", "acme"}


async def test_deletions_seen_by_another_replica_count_too(make: Any, as_record: Any) -> None:
    store = FakeStore(deleted={"globex": make.when})
    await Writer(store, MappingOptions()).on_batch(batch(FakeBus(), [
        (topics.FEEDBACK_SUBMITTED, type(make)(tenant="globex").feedback("r1")),
    ], as_record))
    assert store.calls == []  # nothing left to write


async def test_rows_made_ahead_are_written_as_made_and_bad_deletions_dead_lettered(
        make: Any, as_record: Any) -> None:
    store, bus = FakeStore(), FakeBus()
    writer = Writer(store, MappingOptions())
    b = batch(bus, [(topics.INFERENCE_COMPLETED, make.answer(event_id="r1")),
                    (topics.TENANT_DELETED, make.tenant_deleted(""))], as_record)
    mapped = writer.prepare(b.items)  # while the batch before is written: no side effects
    assert bus.dead == [] and store.calls == []
    assert [r["id"] for r in mapped.rows.rows("answers")] == ["r1"]
    b.prepared = mapped
    await writer.on_batch(b)
    assert [reason for _, reason in bus.dead] == ["MISSING_TENANT_ID"]
    assert store.written == [mapped.rows]  # the rows made ahead, not made again
    assert store.calls == [("write", {"events": 1, "answers": 1, "scores": 3})]


async def test_a_deletion_in_one_batch_drops_the_rows_made_ahead_in_the_next(
        make: Any, as_record: Any) -> None:
    store, bus = FakeStore(), FakeBus()
    writer = Writer(store, MappingOptions())
    globex = type(make)(tenant="globex")
    first = batch(bus, [(topics.TENANT_DELETED, globex.tenant_deleted("globex"))], as_record)
    late = type(make)(tenant="globex", when=make.when - timedelta(seconds=1))
    second = batch(bus, [(topics.INFERENCE_COMPLETED, late.answer(event_id="late")),
                         (topics.INFERENCE_COMPLETED, make.answer(event_id="acme"))], as_record)
    first.prepared, second.prepared = writer.prepare(first.items), writer.prepare(second.items)
    await writer.on_batch(first)
    await writer.on_batch(second)  # mapped before the deletion ran; dropped when written
    assert [r["id"] for r in store.written[-1].rows("answers")] == ["acme"]


def test_rows_are_positional_and_ts_is_epoch_ms() -> None:
    rows = Rows()
    rows.append("events", ("acme", 1_000, "e1", "t", "p", 10, "tr", 1_000))
    rows.add("events", tenant="globex", ts=2_000, id="e2", topic="t", producer="p", bytes=1,
             trace_id="tr", version=2_000)
    [(table, names, columns)] = list(rows.tables())
    assert table == "events" and names[:3] == ("tenant", "ts", "id")
    assert list(columns[0]) == ["acme", "globex"] and list(columns[1]) == [1_000, 2_000]
    assert rows.drop_deleted({"globex": 2_000, "acme": 999}) == 1  # not after its deletion
    assert [r["id"] for r in rows.rows("events")] == ["e1"]
    with pytest.raises(KeyError, match="missing columns"):
        rows.add("events", tenant="x")
    rows.append("scores", ("too", "short"))
    with pytest.raises(ValueError, match="scores: rows of 2 values"):
        list(rows.tables())
