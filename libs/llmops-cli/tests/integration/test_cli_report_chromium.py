"""`llmops report` end to end without the platform: the sample data set on a real chDB store,
served by a stand-in ObservabilityService (the panels run on the store, as the service does)
on a real gRPC socket; the report it writes is opened in headless Chromium (Debian's
`chromium`, installed by infra/scripts/setup.sh), and every chart must have drawn its data."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC
from html.parser import HTMLParser
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from google.protobuf.struct_pb2 import ListValue

from llmops.observability.v1 import observability_pb2, observability_pb2_grpc
from llmops_cli.report import PanelData, ReportInfo, render
from llmops_cli.testing import fake_service, run
from llmops_observability import panels
from llmops_observability.panels import sample
from llmops_observability.testing import fresh_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store() -> Iterator[Client]:
    # One chDB engine per process: a database of its own on the shared engine folder.
    client = fresh_client("report")
    sample.load(client)
    yield client
    client.close()


def _panel(p: panels.Panel) -> observability_pb2.Panel:
    return observability_pb2.Panel(id=p.id, title=p.title, dashboard=p.dashboard, kind=p.kind,
                                   unit=p.unit, description=p.description)


class PanelsOnStore(observability_pb2_grpc.ObservabilityServiceServicer):
    """What the observability service's API does with the panels (a stand-in for it)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def ListPanels(self, request, context):  # type: ignore[no-untyped-def]
        return observability_pb2.ListPanelsResponse(
            panels=[_panel(p) for p in panels.PANELS.values()])

    def QueryPanel(self, request, context):  # type: ignore[no-untyped-def]
        result = panels.run(self.client, request.panel_id,
                            since=request.since.ToDatetime(tzinfo=UTC),
                            until=request.until.ToDatetime(tzinfo=UTC),
                            interval_seconds=request.interval_seconds,
                            tenant=None if request.tenant == "*" else request.tenant)
        rows = []
        for row in result.wire_rows():
            values = ListValue()
            values.extend(row)
            rows.append(values)
        return observability_pb2.QueryPanelResponse(
            panel=_panel(result.panel), sql=result.sql, rows=rows,
            columns=[observability_pb2.Column(name=n, type=t) for n, t in result.columns])


class Charts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, str]] = {}
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = a
        if "data-panel" in a:
            self.charts[a["data-panel"]] = a


def chromium_dom(page: Path, tmp_path: Path) -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed: run infra/scripts/setup.sh (apt-get install "
                    "chromium)", pytrace=False)
    proc = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}",
         # Nothing may be fetched: every host name fails to resolve.
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_report_from_the_service_renders_every_chart_with_data(
        store: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    with fake_service(observability_pb2_grpc.add_ObservabilityServiceServicer_to_server,
                      PanelsOnStore(store), "LLMOPS_OBSERVABILITY_ADDR", monkeypatch):
        code = run(["report", "--tenant", "acme", "--since", sample.START.isoformat(),
                    "--until", sample.END.isoformat(), "--out", str(out)])
    assert code == 0
    parsed = Charts()
    parsed.feed(chromium_dom(out, tmp_path))
    assert sorted(parsed.charts) == sorted(panels.PANELS)
    assert parsed.body.get("data-charts-rendered") == str(len(panels.PANELS))
    for panel_id, chart in parsed.charts.items():
        assert chart.get("data-rendered") == "true", panel_id
        assert "data-error" not in chart, (panel_id, chart.get("data-error"))
        assert int(chart["data-rows"]) > 0, panel_id
        assert int(chart["data-points"]) > 0, panel_id
    # A chart draws every value it got: the table of drift detections has 4 rows, the
    # feedback stat one value, the dead-letter bar chart 2 bars.
    assert parsed.charts["drift.detections"]["data-points"] == "4"
    assert parsed.charts["feedback.share_positive"]["data-points"] == "1"
    assert parsed.charts["platform.dead_letters"]["data-points"] == "2"


def test_a_panel_without_data_says_so(store: Client, tmp_path: Path) -> None:
    result = panels.run(store, "drift.detections", since=sample.START, until=sample.END,
                        interval_seconds=0, tenant="nobody")
    empty = PanelData(result.panel.id, result.panel.title, result.panel.dashboard,
                      result.panel.kind, result.panel.unit, result.panel.description,
                      result.columns, result.rows)
    out = tmp_path / "empty.html"
    out.write_text(render([empty], ReportInfo(sample.START, sample.END, "nobody")))
    dom = chromium_dom(out, tmp_path)
    parsed = Charts()
    parsed.feed(dom)
    assert parsed.charts["drift.detections"]["data-points"] == "0"
    assert parsed.charts["drift.detections"]["data-rendered"] == "true"
    assert "No data in this range" in dom
