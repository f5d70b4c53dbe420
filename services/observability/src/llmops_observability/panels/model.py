"""What a panel and a dashboard are (no SQL here: see definitions.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

Kind = Literal["timeseries", "barchart", "stat", "table"]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str


@dataclass(frozen=True)
class Panel:
    """One chart. Its SQL is written for the grafana-clickhouse-datasource plugin (its macros
    and the dashboards' variables) and its result's shape follows `kind`:

    * timeseries: `time` first, then label columns (strings; each distinct label is a series),
      then value columns (Grafana's long format, which it turns into one series per label and
      value column);
    * barchart: label columns (the category), then value columns;
    * stat: one row of value columns;
    * table: any columns.
    """

    id: str
    title: str
    dashboard: str
    kind: Kind
    # Grafana's unit id of the value columns: "ms", "percentunit", "short", "cps", or
    # "suffix:<text>" for a custom suffix.
    unit: str
    description: str
    sql: str
    # Width on Grafana's 24-column grid.
    width: int = 12


@dataclass(frozen=True)
class Annotation:
    """Events marked on the time axis of dashboards' time series (Grafana annotations). The SQL
    returns `time`, `text` and `tags` (an array of strings)."""

    name: str
    dashboards: tuple[str, ...]
    color: str
    sql: str


@dataclass(frozen=True)
class PanelResult:
    panel: Panel
    # (name, ClickHouse type name) in the order of each row's values.
    columns: list[tuple[str, str]]
    # Times are timezone-aware UTC datetimes; NaN and infinities (an average of nothing) are None.
    rows: list[tuple[Any, ...]]
    # The SQL that ran, macros expanded.
    sql: str

    def wire_rows(self) -> list[list[Any]]:
        """The rows as JSON values, as QueryPanelResponse carries them (google.protobuf
        ListValue): times as RFC 3339 strings in UTC ("2026-03-02T10:00:00Z"), dates as
        "2026-03-02", decimals as floats, arrays as lists, maps as objects."""
        return [[_wire(v) for v in row] for row in self.rows]


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_wire(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)
