"""ObservabilityService: named, parameterised panels over the store; callers never send SQL.

A member reads its own tenant; another tenant, or "*" (every tenant), needs the admin role.
Panels run in a worker thread (the ClickHouse client is synchronous).
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import grpc
from clickhouse_connect.driver.client import Client
from google.protobuf import struct_pb2

from llmops.observability.v1 import observability_pb2, observability_pb2_grpc
from llmops_kit.auth import Role, current_principal
from llmops_kit.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from llmops_observability.ports import PanelCatalog, PanelInfo

SERVICE_FULL_NAME = observability_pb2.DESCRIPTOR.services_by_name["ObservabilityService"].full_name
# The least role each RPC needs (the kit's wrapper enforces it); the tenant rule is below.
ROLES = {"ListPanels": Role.MEMBER, "QueryPanel": Role.MEMBER}
ALL_TENANTS = "*"
DEFAULT_RANGE = timedelta(hours=24)
MAX_RANGE = timedelta(days=400)
TARGET_BUCKETS = 100


def panel_pb(panel: PanelInfo) -> observability_pb2.Panel:
    return observability_pb2.Panel(id=panel.id, title=panel.title, dashboard=panel.dashboard,
                                   kind=panel.kind, unit=panel.unit,
                                   description=panel.description)


def rfc3339(ts: datetime) -> str:
    """ClickHouse hands back naive UTC datetimes; every time goes out as RFC 3339 in UTC."""
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def value_pb(value: Any) -> struct_pb2.Value:
    """One cell: times as RFC 3339 strings, numbers as numbers, arrays as lists, maps as
    structs, NULL (and NaN, which JSON cannot carry) as null."""
    out = struct_pb2.Value()
    if value is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int | float | Decimal):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            out.null_value = struct_pb2.NULL_VALUE
        else:
            out.number_value = number
    elif isinstance(value, datetime):
        out.string_value = rfc3339(value)
    elif isinstance(value, date):
        out.string_value = value.isoformat()
    elif isinstance(value, list | tuple):
        out.list_value.values.extend(value_pb(v) for v in value)
    elif isinstance(value, dict):
        for key, item in value.items():
            out.struct_value.fields[str(key)].CopyFrom(value_pb(item))
    else:
        out.string_value = str(value)
    return out


def row_pb(row: tuple[Any, ...] | list[Any]) -> struct_pb2.ListValue:
    return struct_pb2.ListValue(values=[value_pb(v) for v in row])


def time_range(request: Any, now: datetime) -> tuple[datetime, datetime, int]:
    """(since, until, interval_seconds) of a request, or INVALID_ARGUMENT with a reason."""
    until = request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else now
    since = (request.since.ToDatetime(tzinfo=UTC) if request.HasField("since")
             else until - DEFAULT_RANGE)
    if until <= since:
        raise InvalidArgument("BAD_RANGE", "until must be after since")
    if until - since > MAX_RANGE:
        raise InvalidArgument("RANGE_TOO_LONG",
                              f"the range is at most {MAX_RANGE.days} days")
    interval = request.interval_seconds or max(
        1, int((until - since).total_seconds()) // TARGET_BUCKETS)
    if interval > (until - since).total_seconds():
        raise InvalidArgument("BAD_INTERVAL", "interval_seconds is longer than the range")
    return since, until, interval


def tenant_scope(requested: str) -> str | None:
    """The tenant a query reads (None: every tenant), as the caller may."""
    principal = current_principal()
    if principal is None:  # the kit's wrapper refuses unauthenticated calls before this
        raise Unauthenticated("NO_PRINCIPAL", "the request carries no API key")
    if not requested or requested == principal.tenant:
        return principal.tenant
    if not principal.can(Role.ADMIN):
        raise PermissionDenied("TENANT_FORBIDDEN",
                               "reading another tenant (or all of them) needs the admin role")
    return None if requested == ALL_TENANTS else requested


class ObservabilityServicer(observability_pb2_grpc.ObservabilityServiceServicer):  # type: ignore[misc]
    def __init__(self, catalog: PanelCatalog, client: Client) -> None:
        self.catalog = catalog
        self.client = client

    async def ListPanels(self, request: Any, context: grpc.aio.ServicerContext
                         ) -> observability_pb2.ListPanelsResponse:
        panels = [p for p in self.catalog.panels.values()
                  if not request.dashboard or p.dashboard == request.dashboard]
        return observability_pb2.ListPanelsResponse(panels=[panel_pb(p) for p in panels])

    async def QueryPanel(self, request: Any, context: grpc.aio.ServicerContext
                         ) -> observability_pb2.QueryPanelResponse:
        if request.panel_id not in self.catalog.panels:
            raise NotFound("UNKNOWN_PANEL", "no panel with this id (ListPanels names them)")
        since, until, interval = time_range(request, datetime.now(UTC))
        tenant = tenant_scope(request.tenant)
        try:
            result = await asyncio.to_thread(
                self.catalog.run, self.client, request.panel_id, since=since, until=until,
                interval_seconds=interval, tenant=tenant)
        except KeyError as exc:
            raise NotFound("UNKNOWN_PANEL", "no panel with this id") from exc
        except ValueError as exc:
            # The panels' parameter checks (panels.MacroError) carry a stable reason.
            reason = getattr(exc, "reason", None)
            if reason is None:
                raise
            raise InvalidArgument(str(reason), str(getattr(exc, "message", exc))) from exc
        return observability_pb2.QueryPanelResponse(
            panel=panel_pb(result.panel),
            columns=[observability_pb2.Column(name=n, type=t) for n, t in result.columns],
            rows=[row_pb(r) for r in result.rows], sql=result.sql)
