"""`llmops report`'s drawing: panels (definition + result rows) into ONE static HTML file that
needs no network (the data, CSS and the script that draws SVG charts are inline).

The report takes a *panel source*, a callable returning the panels with their results: the
CLI's reads the observability service's gRPC ListPanels/QueryPanel; tests feed it the panels
run on a local store. Each panel's rows are shaped here the way Grafana reads them (see
`shape`); the page's script draws them and marks every chart element with
`data-points="<number of points, bars, values or rows drawn>"`.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

ASSETS = "llmops_cli.report_assets"
KINDS = ("timeseries", "barchart", "stat", "table")
# The page may load nothing: only its own inline style and script run.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


@dataclass
class PanelData:
    id: str
    title: str
    dashboard: str
    kind: str
    unit: str
    description: str
    # (name, ClickHouse type) per column; rows in column order (times as datetimes or RFC 3339
    # strings, as the gRPC API sends them).
    columns: list[tuple[str, str]] = field(default_factory=list)
    rows: list[Sequence[Any]] = field(default_factory=list)
    # Set when the panel could not be read (shown instead of a chart).
    error: str = ""


PanelSource = Callable[[], Sequence[PanelData]]


@dataclass(frozen=True)
class ReportInfo:
    since: datetime
    until: datetime
    # None: all tenants.
    tenant: str | None
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    dashboards: dict[str, str] = field(default_factory=dict)  # uid -> title


def _is_time(ctype: str) -> bool:
    return ctype.removeprefix("Nullable(").startswith(("DateTime", "Date"))


def _is_number(ctype: str) -> bool:
    inner = ctype.removeprefix("Nullable(").removeprefix("LowCardinality(")
    return inner.startswith(("Int", "UInt", "Float", "Decimal", "Bool"))


def epoch_ms(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, str):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _cell(value: Any, ctype: str) -> Any:
    if _is_time(ctype):
        ms = epoch_ms(value)
        return None if ms is None else {"t": ms}
    if _is_number(ctype):
        return _number(value)
    return "" if value is None else str(value)


def shape(panel: PanelData) -> dict[str, Any]:
    """What the page draws for `panel`, by kind:

    * timeseries: the first time column, label columns (strings) and value columns (numbers)
      become one series per label combination and value column (Grafana's long-to-wide);
    * barchart: one bar per row and value column, labelled by the label columns;
    * stat: the value columns of the first row;
    * table: every cell (times as {"t": ms})."""
    names = [n for n, _ in panel.columns]
    types = [t for _, t in panel.columns]
    times = [i for i, t in enumerate(types) if _is_time(t)]
    values = [i for i, t in enumerate(types) if _is_number(t)]
    labels = [i for i, t in enumerate(types) if not _is_time(t) and not _is_number(t)]
    out: dict[str, Any] = {"kind": panel.kind, "unit": panel.unit}
    if panel.kind == "timeseries" and times:
        series: dict[str, list[list[float]]] = {}
        for row in panel.rows:
            t = epoch_ms(row[times[0]])
            for v in values:
                y = _number(row[v])
                name = " ".join([str(row[i]) for i in labels]
                                + ([names[v]] if len(values) > 1 or not labels else []))
                points = series.setdefault(name, [])
                if t is not None and y is not None:
                    points.append([t, y])
        out["series"] = [{"name": n, "points": sorted(p)} for n, p in series.items()]
    elif panel.kind == "barchart":
        out["bars"] = [{"label": " ".join([str(row[i]) for i in labels]
                                          + ([names[v]] if len(values) > 1 else [])),
                        "value": _number(row[v])}
                       for row in panel.rows for v in values]
    elif panel.kind == "stat":
        first = panel.rows[0] if panel.rows else [None] * len(names)
        out["stats"] = [{"label": names[v], "value": _number(first[v])} for v in values]
    else:
        out["kind"] = "table"
        out["columns"] = names
        out["units"] = ["time" if _is_time(t) else panel.unit if _is_number(t) else ""
                        for t in types]
        out["rows"] = [[_cell(v, t) for v, t in zip(row, types, strict=True)]
                       for row in panel.rows]
    return out


def _json_for_script(data: Any) -> str:
    # Inside <script type="application/json">: "<" escaped, so no data can close the element.
    return json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def _asset(name: str) -> str:
    return resources.files(ASSETS).joinpath(name).read_text(encoding="utf-8")


def render(panels: Sequence[PanelData], info: ReportInfo) -> str:
    """The report as one HTML document."""
    e = html.escape
    tenant = "all tenants" if info.tenant is None else f"tenant {info.tenant}"
    span = f"{info.since:%Y-%m-%d %H:%M} to {info.until:%Y-%m-%d %H:%M} UTC"
    order: list[str] = []
    for p in panels:
        if p.dashboard not in order:
            order.append(p.dashboard)
    sections, toc = [], []
    data: dict[str, Any] = {"range": [epoch_ms(info.since), epoch_ms(info.until)], "panels": {}}
    for uid in order:
        title = info.dashboards.get(uid, uid)
        toc.append(f'<li><a href="#{e(uid)}">{e(title)}</a></li>')
        cards = []
        for p in (p for p in panels if p.dashboard == uid):
            if p.error:
                chart = f'<p class="error">Could not read this panel: {e(p.error)}</p>'
            else:
                data["panels"][p.id] = shape(p)
                chart = (f'<div class="chart" data-panel="{e(p.id)}" data-kind="{e(p.kind)}" '
                         f'data-rows="{len(p.rows)}" data-points="0"></div>')
            cards.append(
                f'<figure class="panel panel-{e(p.kind)}" id="panel-{e(p.id)}">'
                f'<figcaption><h3>{e(p.title)}</h3><p>{e(p.description)}</p>'
                f'<code>{e(p.id)}</code></figcaption>{chart}</figure>')
        sections.append(f'<section id="{e(uid)}"><h2>{e(title)}</h2>'
                        f'<div class="grid">{"".join(cards)}</div></section>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>LLMOps report: {e(tenant)}, {e(span)}</title>
<style>{_asset("report.css")}</style></head>
<body><header><h1>LLMOps report</h1>
<p>{e(tenant.capitalize())}, {e(span)}. Generated {info.generated_at:%Y-%m-%d %H:%M:%S} UTC
from the observability service's panels (the same definitions as the Grafana dashboards).</p>
<nav><ul>{"".join(toc)}</ul></nav></header>
<main>{"".join(sections)}</main>
<script type="application/json" id="report-data">{_json_for_script(data)}</script>
<script>{_asset("report.js")}</script>
</body></html>
"""
