"""What the gRPC API needs from the panel definitions (llmops_observability.panels)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from clickhouse_connect.driver.client import Client


class PanelInfo(Protocol):
    """A panel definition (panels.Panel)."""

    id: str
    title: str
    dashboard: str
    kind: str
    unit: str
    description: str


class PanelResultLike(Protocol):
    """What a panel run returns (panels.PanelResult)."""

    panel: PanelInfo
    columns: list[tuple[str, str]]
    rows: list[tuple[Any, ...]]
    sql: str


class PanelRun(Protocol):
    def __call__(self, client: Client, panel_id: str, *, since: datetime, until: datetime,
                 interval_seconds: int, tenant: str | None) -> PanelResultLike: ...


@dataclass(frozen=True)
class PanelCatalog:
    """The named panels by id, and how one runs (raises KeyError for an unknown id)."""

    panels: Mapping[str, PanelInfo]
    run: PanelRun | Callable[..., PanelResultLike]
