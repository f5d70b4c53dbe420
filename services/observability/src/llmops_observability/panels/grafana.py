"""Grafana dashboards generated from the panel definitions, one JSON file per dashboard in
infra/grafana/dashboards (committed; a test fails when they are stale):

    python -m llmops_observability.panels.grafana infra/grafana/dashboards          # write
    python -m llmops_observability.panels.grafana --check infra/grafana/dashboards  # verify

Every dashboard has a stable uid, the `tenant` variable (one tenant or All) and reads the
provisioned ClickHouse data source (uid DATASOURCE_UID, infra/grafana/provisioning).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from llmops_observability.panels.definitions import ANNOTATIONS, DASHBOARDS, PANELS
from llmops_observability.panels.macros import ALL_TENANTS, WEAK_RETRIEVAL_THRESHOLD
from llmops_observability.panels.model import Dashboard, Panel

PLUGIN = "grafana-clickhouse-datasource"
DATASOURCE_UID = "llmops-clickhouse"
DATASOURCE = {"type": PLUGIN, "uid": DATASOURCE_UID}
HEIGHT = 8
# The plugin's query formats (sqlds): 0 time series (long format turned wide), 1 table.
FORMAT_TIMESERIES, FORMAT_TABLE = 0, 1


def tenant_variable() -> dict[str, Any]:
    query = "SELECT DISTINCT tenant FROM events WHERE $__timeFilter(ts) ORDER BY tenant"
    return {
        "name": "tenant", "label": "Tenant", "type": "query", "datasource": DATASOURCE,
        "query": query, "definition": query, "refresh": 2, "sort": 1,
        "multi": False, "includeAll": True,
        # Grafana inserts a custom "All" value unformatted: quoted here, it reads the same as
        # a tenant formatted with :singlequote, and no tenant id can be "*".
        "allValue": f"'{ALL_TENANTS}'",
        "current": {"selected": True, "text": "All", "value": "$__all"},
    }


def threshold_variable() -> dict[str, Any]:
    options = ["0.3", "0.4", "0.5", "0.6", "0.7"]
    default = str(WEAK_RETRIEVAL_THRESHOLD)
    return {
        "name": "weak_retrieval_threshold", "label": "Weak retrieval under", "type": "custom",
        "query": ",".join(options), "multi": False, "includeAll": False,
        "current": {"selected": True, "text": default, "value": default},
        "options": [{"selected": o == default, "text": o, "value": o} for o in options],
    }


def _options(panel: Panel) -> dict[str, Any]:
    if panel.kind == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value", "graphMode": "none"}
    if panel.kind == "barchart":
        return {"orientation": "horizontal", "showValue": "auto",
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    if panel.kind == "table":
        return {"showHeader": True, "cellHeight": "sm"}
    return {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                       "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"}}


def panel_json(panel: Panel, number: int, x: int, y: int) -> dict[str, Any]:
    timeseries = panel.kind == "timeseries"
    return {
        "id": number,
        "type": panel.kind,
        "title": panel.title,
        "description": f"{panel.description} (panel {panel.id})",
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": HEIGHT},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": _options(panel),
        "targets": [{
            "refId": "A",
            "datasource": DATASOURCE,
            "editorType": "sql",
            "format": FORMAT_TIMESERIES if timeseries else FORMAT_TABLE,
            "queryType": "timeseries" if timeseries else "table",
            "rawSql": panel.sql,
        }],
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    members = [p for p in PANELS.values() if p.dashboard == dashboard.uid]
    out: list[dict[str, Any]] = []
    x = y = 0
    for number, panel in enumerate(members, start=1):
        if x + panel.width > 24:
            x, y = 0, y + HEIGHT
        out.append(panel_json(panel, number, x, y))
        x += panel.width
    variables = [tenant_variable()]
    if any("${weak_retrieval_threshold}" in p.sql for p in members):
        variables.append(threshold_variable())
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["llmops", "generated"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": [
            {"name": a.name, "enable": True, "iconColor": a.color, "datasource": DATASOURCE,
             "target": {"refId": "Anno", "datasource": DATASOURCE, "editorType": "sql",
                        "format": FORMAT_TABLE, "queryType": "table", "rawSql": a.sql}}
            for a in ANNOTATIONS if dashboard.uid in a.dashboards]},
        "links": [{"type": "dashboards", "tags": ["llmops"], "title": "LLMOps dashboards",
                   "asDropdown": True}],
        "panels": out,
    }


def render() -> dict[str, str]:
    """File name -> content of every dashboard."""
    return {f"{uid}.json": json.dumps(dashboard_json(d), indent=2, ensure_ascii=False) + "\n"
            for uid, d in DASHBOARDS.items()}


def write(folder: Path, check: bool = False) -> list[str]:
    """Writes the dashboards into `folder` (removing generated ones no longer defined) or,
    with `check`, returns the names of the files that differ from what would be written."""
    files = render()
    stale = sorted(name for name, text in files.items()
                   if not (folder / name).is_file() or (folder / name).read_text() != text)
    extra = sorted(p.name for p in folder.glob("*.json") if p.name not in files) \
        if folder.is_dir() else []
    if not check:
        folder.mkdir(parents=True, exist_ok=True)
        for name in stale:
            (folder / name).write_text(files[name])
        for name in extra:
            (folder / name).unlink()
    return stale + extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    changed = write(args.folder, check=args.check)
    verb = "stale" if args.check else "written"
    for name in changed:
        print(f"{verb}: {args.folder / name}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
