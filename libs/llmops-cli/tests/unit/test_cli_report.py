"""`llmops report`'s shaping and HTML, and the command against a fake ObservabilityService on
a real gRPC socket."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.struct_pb2 import ListValue

from llmops.observability.v1 import observability_pb2, observability_pb2_grpc
from llmops_cli.report import PanelData, ReportInfo, render, shape
from llmops_cli.report_cmd import parse_when
from llmops_cli.testing import fake_service, run

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TIME = "DateTime64(3, 'UTC')"


def panel(kind: str, columns: list[tuple[str, str]], rows: list[list[Any]],
          unit: str = "ms", pid: str = "x.y") -> PanelData:
    return PanelData(pid, "Title", "llmops-answers", kind, unit, "About it.", columns, rows)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_timeseries_long_rows_become_one_series_per_label_and_value() -> None:
    rows = [[T0.isoformat(), "retrieval", 1.0, 2.0], ["2026-03-02T10:01:00Z", "retrieval", 3.0,
                                                      None],
            [T0, "generation", 10.0, 20.0]]
    out = shape(panel("timeseries", [("time", TIME), ("stage", "String"), ("p50", "Float64"),
                                     ("p95", "Float64")], rows))
    series = {s["name"]: s["points"] for s in out["series"]}
    assert series == {
        "retrieval p50": [[ms(T0), 1.0], [ms(T0) + 60_000, 3.0]],
        "retrieval p95": [[ms(T0), 2.0]],  # a null value is a gap, not a zero
        "generation p50": [[ms(T0), 10.0]], "generation p95": [[ms(T0), 20.0]]}


def test_timeseries_with_one_value_is_named_by_its_label_or_column() -> None:
    labelled = shape(panel("timeseries", [("time", TIME), ("model", "LowCardinality(String)"),
                                          ("share", "Float64")], [[T0, "m@1", 0.5]]))
    assert [s["name"] for s in labelled["series"]] == ["m@1"]
    bare = shape(panel("timeseries", [("time", TIME), ("weak_share", "Float64")], [[T0, 0.5]]))
    assert bare["series"] == [{"name": "weak_share", "points": [[ms(T0), 0.5]]}]


def test_barchart_stat_and_table_shapes() -> None:
    bars = shape(panel("barchart", [("model", "String"), ("share", "Float64")],
                       [["a", 0.25], ["b", None]]))
    assert bars["bars"] == [{"label": "a", "value": 0.25}, {"label": "b", "value": None}]
    stat = shape(panel("stat", [("share_positive", "Float64")], [[float("nan")]]))
    assert stat["stats"] == [{"label": "share_positive", "value": None}]
    assert shape(panel("stat", [("n", "UInt64")], []))["stats"] == [{"label": "n", "value": None}]
    table = shape(panel("table", [("time", TIME), ("tenant", "String"), ("auc", "Nullable(Float64)")],
                        [["2026-03-02T10:00:00Z", "acme", None]], unit="short"))
    assert table["rows"] == [[{"t": ms(T0)}, "acme", None]]
    assert table["units"] == ["time", "", "short"]


def test_render_is_self_contained_and_escapes_data() -> None:
    evil = "</script><img src=x onerror=alert(1)>"
    page = render([panel("barchart", [("model", "String"), ("n", "UInt64")], [[evil, 3]]),
                   PanelData("z.broken", "Broken <b>", "llmops-drift", "table", "short", "d",
                             error="UNAVAILABLE")],
                  ReportInfo(T0, T0 + timedelta(hours=1), "acme",
                             dashboards={"llmops-answers": "Answers"}))
    assert evil not in page and "<img" not in page
    assert "Broken &lt;b&gt;" in page and "Could not read this panel: UNAVAILABLE" in page
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    assert data["panels"]["x.y"]["bars"] == [{"label": evil, "value": 3.0}]
    assert data["range"] == [ms(T0), ms(T0) + 3_600_000]
    # Nothing is loaded from anywhere: no external scripts, styles, images or fonts.
    assert not re.search(r"""(src|href)=["']?(https?:|//)|<link|@import|url\(""", page)
    assert "Content-Security-Policy" in page and "Tenant acme" in page


@pytest.mark.parametrize(("text", "expected"), [
    ("24h", T0 - timedelta(hours=24)), ("90m", T0 - timedelta(minutes=90)),
    ("7d", T0 - timedelta(days=7)), ("now", T0),
    ("2026-03-01T08:00:00Z", datetime(2026, 3, 1, 8, tzinfo=UTC)),
    ("2026-03-01T08:00:00", datetime(2026, 3, 1, 8, tzinfo=UTC))])
def test_parse_when(text: str, expected: datetime) -> None:
    assert parse_when(text, T0) == expected


def test_parse_when_refuses_nonsense() -> None:
    with pytest.raises(SystemExit, match="not a time"):
        parse_when("yesterday", T0)


class FakeObservability(observability_pb2_grpc.ObservabilityServiceServicer):
    def __init__(self) -> None:
        self.queries: list[tuple[observability_pb2.QueryPanelRequest, dict[str, str]]] = []

    def ListPanels(self, request, context):  # type: ignore[no-untyped-def]
        return observability_pb2.ListPanelsResponse(panels=[
            observability_pb2.Panel(id="answers.ttft", title="TTFT", dashboard="llmops-answers",
                                    kind="timeseries", unit="ms", description="d"),
            observability_pb2.Panel(id="drift.detections", title="Drift", dashboard="llmops-drift",
                                    kind="table", unit="short", description="d")])

    def QueryPanel(self, request, context):  # type: ignore[no-untyped-def]
        self.queries.append((request, dict(context.invocation_metadata())))
        if request.panel_id == "drift.detections":
            context.abort(grpc.StatusCode.INTERNAL, "boom")
        row = ListValue()
        row.extend(["2026-03-02T10:00:00Z", 12.5])
        return observability_pb2.QueryPanelResponse(
            panel=observability_pb2.Panel(id=request.panel_id),
            columns=[observability_pb2.Column(name="time", type=TIME),
                     observability_pb2.Column(name="p50", type="Float64")], rows=[row])


def test_report_command_reads_every_panel_over_grpc(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeObservability()
    out = tmp_path / "r" / "report.html"
    with fake_service(observability_pb2_grpc.add_ObservabilityServiceServicer_to_server, fake,
                      "LLMOPS_OBSERVABILITY_ADDR", monkeypatch):
        code = run(["report", "--tenant", "acme", "--since", "2026-03-02T10:00:00Z",
                    "--until", "2026-03-02T11:00:00Z", "--out", str(out), "--json"])
    # One panel failed: the report is written, the exit code says so.
    assert code == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"path": str(out.resolve()), "panels": 2, "with_data": 1,
                       "failed": ["drift.detections"]}
    request, md = fake.queries[0]
    assert request.tenant == "acme" and md["x-api-key"] == "k-acme"
    assert request.since.ToDatetime(tzinfo=UTC) == T0
    assert request.until.ToDatetime(tzinfo=UTC) == T0 + timedelta(hours=1)
    page = out.read_text()
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    assert data["panels"]["answers.ttft"]["series"] == [
        {"name": "p50", "points": [[ms(T0), 12.5]]}]
    assert "Could not read this panel: INTERNAL" in page


def test_all_tenants_needs_the_admin_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeObservability()
    with fake_service(observability_pb2_grpc.add_ObservabilityServiceServicer_to_server, fake,
                      "LLMOPS_OBSERVABILITY_ADDR", monkeypatch):
        monkeypatch.setenv("LLMOPS_ADMIN_KEY", "k-admin")
        run(["report", "--tenant", "*", "--out", str(tmp_path / "all.html")])
    request, md = fake.queries[0]
    assert request.tenant == "*" and md["x-api-key"] == "k-admin"
    assert "All tenants" in (tmp_path / "all.html").read_text()


def test_the_continuous_training_panels_are_a_section_of_their_own() -> None:
    from llmops_cli.report_cmd import DASHBOARD_TITLES

    steps = PanelData("training.loop_steps", "Loop steps", "llmops-training", "table", "short",
                      "d", [("time", TIME), ("step", "String"), ("reason", "String")],
                      [[T0, "gate_refused", "gate failed: holds_fact"]])
    page = render([panel("barchart", [("m", "String"), ("n", "UInt64")], [["a", 1]]), steps],
                  ReportInfo(T0, T0 + timedelta(hours=1), "acme", dashboards=DASHBOARD_TITLES))
    assert '<section id="llmops-training"><h2>Continuous training</h2>' in page
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    assert data["panels"]["training.loop_steps"]["rows"][0][1:] == \
        ["gate_refused", "gate failed: holds_fact"]
