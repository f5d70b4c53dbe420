"""The panels: one definition per chart, for Grafana's generated dashboards, the service's
QueryPanel and `llmops report`.

    PANELS: dict[str, Panel]      # by stable id, e.g. "answers.latency_by_stage"
    run(client, panel_id, *, since, until, interval_seconds, tenant) -> PanelResult
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from llmops_observability.panels.definitions import ANNOTATIONS, DASHBOARDS, PANELS
from llmops_observability.panels.macros import (
    ALL_TENANTS,
    WEAK_RETRIEVAL_THRESHOLD,
    MacroError,
    auto_interval,
    expand,
)
from llmops_observability.panels.model import Annotation, Dashboard, Kind, Panel, PanelResult

__all__ = ["ALL_TENANTS", "ANNOTATIONS", "DASHBOARDS", "PANELS", "WEAK_RETRIEVAL_THRESHOLD",
           "Annotation", "Dashboard", "Kind", "MacroError", "Panel", "PanelResult",
           "auto_interval", "expand", "run"]


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        # The store is UTC; clickhouse-connect hands back naive datetimes for UTC columns.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run(client: Client, panel_id: str, *, since: datetime, until: datetime,
        interval_seconds: int, tenant: str | None) -> PanelResult:
    """Runs panel `panel_id` (KeyError if there is none) over [since, until] with buckets of
    `interval_seconds` (0: automatic) for `tenant` (None: all tenants). A bad tenant id or
    range raises MacroError (a ValueError with a stable `reason`)."""
    panel = PANELS[panel_id]
    sql = expand(panel.sql, since, until, interval_seconds, tenant)
    result = client.query(sql)
    columns = [(name, ctype.name) for name, ctype in
               zip(result.column_names, result.column_types, strict=True)]
    rows = [tuple(_value(v) for v in row) for row in result.result_rows]
    return PanelResult(panel=panel, columns=columns, rows=rows, sql=sql)
