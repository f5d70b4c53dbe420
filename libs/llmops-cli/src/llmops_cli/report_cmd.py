"""`llmops report`: every observability panel, read through the observability service's gRPC
QueryPanel, drawn into one static HTML file (see report.py)."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Value

from llmops.observability.v1 import observability_pb2, observability_pb2_grpc
from llmops_cli.client import admin_key, api_key_for, metadata
from llmops_cli.report import PanelData, ReportInfo, render
from llmops_kit import ports

ALL = "*"
TIMEOUT = 60.0
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, now: datetime) -> datetime:
    """`24h`, `90m`, `7d` ... before `now`, `now`, or an ISO 8601 time (UTC if no zone)."""
    text = text.strip()
    if text == "now":
        return now
    match = _DURATION.match(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"not a time: {text!r} (use 24h, 90m, 7d, now or an ISO 8601 time)") \
            from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def observability_address() -> str:
    if os.environ.get("LLMOPS_OBSERVABILITY_ADDR"):
        return os.environ["LLMOPS_OBSERVABILITY_ADDR"]
    try:
        return ports.service_address("observability")
    except KeyError:
        raise SystemExit("the observability service's address is unknown: set "
                         "LLMOPS_OBSERVABILITY_ADDR=host:port") from None


def _timestamp(moment: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(moment.astimezone(UTC))
    return ts


async def fetch_panels(address: str, md: Sequence[tuple[str, str]], since: datetime,
                       until: datetime, tenant: str) -> list[PanelData]:
    """Every panel (ListPanels) with its result (QueryPanel) for the range and tenant. A panel
    that fails comes back with `error` set (its status code); ListPanels failing raises."""
    out: list[PanelData] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = observability_pb2_grpc.ObservabilityServiceStub(channel)
        listed = await stub.ListPanels(observability_pb2.ListPanelsRequest(), metadata=md,
                                       timeout=TIMEOUT)
        for p in listed.panels:
            data = PanelData(p.id, p.title, p.dashboard, p.kind, p.unit, p.description)
            req = observability_pb2.QueryPanelRequest(
                panel_id=p.id, since=_timestamp(since), until=_timestamp(until), tenant=tenant)
            try:
                resp = await stub.QueryPanel(req, metadata=md, timeout=TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                data.error = exc.code().name
            else:
                data.columns = [(c.name, c.type) for c in resp.columns]
                data.rows = [[_plain(v) for v in row.values] for row in resp.rows]
            out.append(data)
    return out


def _plain(value: Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind in (None, "null_value"):
        return None
    if kind in ("list_value", "struct_value"):
        return MessageToDict(value)
    return getattr(value, kind)


def default_out(now: datetime) -> Path:
    return Path(f"llmops-report-{now:%Y%m%d-%H%M%S}.html")


async def cmd_report(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    since, until = parse_when(args.since, now), parse_when(args.until, now)
    if until <= since:
        raise SystemExit(f"--since ({since:%Y-%m-%d %H:%M}) must be before --until")
    everyone = args.tenant == ALL
    key = admin_key(args.api_key) if everyone else api_key_for(args.tenant, args.api_key)
    panels = await fetch_panels(observability_address(), metadata(key), since, until,
                                args.tenant)
    out = Path(args.out) if args.out else default_out(now)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = ReportInfo(since=since, until=until, tenant=None if everyone else args.tenant,
                      generated_at=now, dashboards=DASHBOARD_TITLES)
    out.write_text(render(panels, info), encoding="utf-8")
    failed = [p.id for p in panels if p.error]
    with_data = sum(1 for p in panels if p.rows and not p.error)
    summary = {"path": str(out.resolve()), "panels": len(panels), "with_data": with_data,
               "failed": failed}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {summary['path']} ({len(panels)} panels, {with_data} with data"
              + (f", {len(failed)} failed: {', '.join(failed)}" if failed else "") + ")")
    return 1 if failed or not panels else 0


# Titles of the dashboards' uids (the report's sections); an unknown uid is shown as is.
DASHBOARD_TITLES = {
    "llmops-answers": "Answers",
    "llmops-quality": "Quality and safety",
    "llmops-ingestion": "Ingestion",
    "llmops-drift": "Drift",
    "llmops-platform": "Platform",
    "llmops-training": "Continuous training",
}


def add_commands(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    rep = sub.add_parser(
        "report", parents=parents,
        help="a static HTML report of every observability panel (no Grafana needed)")
    rep.add_argument("--since", default="24h", help="24h, 90m, 7d or an ISO 8601 time")
    rep.add_argument("--until", default="now", help="now, a duration before now, or a time")
    rep.add_argument("--out", default=None, help="the HTML file to write "
                                                 "(default llmops-report-<time>.html here)")
    rep.set_defaults(func=cmd_report)
