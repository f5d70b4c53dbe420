"""CanaryMetrics from the observability service: its `rollout.version_metrics` panel
(ObservabilityService.QueryPanel) for one tenant and window, with a platform admin key (the
controller reads any tenant's answers; it acts for the registry, not for a caller)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc

from llmops.observability.v1 import observability_pb2, observability_pb2_grpc
from llmops_kit.grpc_client import call_peer
from llmops_registry.domain.canary import VersionMetrics

PANEL = "rollout.version_metrics"


def parse_rows(name: str, columns: list[str], rows: list[list[Any]]) -> dict[int, VersionMetrics]:
    """Rows of the panel -> metrics per version of `name` (`<name>@<version>` rows only)."""
    out: dict[int, VersionMetrics] = {}
    for values in rows:
        row = dict(zip(columns, values, strict=True))
        label = str(row.get("model_version") or "")
        model, _, version = label.rpartition("@")
        if model != name or not version.isdigit():
            continue
        g = row.get("groundedness")
        out[int(version)] = VersionMetrics(
            requests=int(row.get("requests") or 0), errors=int(row.get("errors") or 0),
            p95_latency_ms=float(row.get("p95_ms") or 0.0),
            safety_blocks=int(row.get("safety_blocks") or 0),
            groundedness=float(g) if g is not None else None,
            negative_feedback=int(row.get("negative_feedback") or 0))
    return out


class ObservabilityMetrics:
    def __init__(self, address: str, api_key: str | None, timeout_seconds: float) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = observability_pb2_grpc.ObservabilityServiceStub(self.channel)
        self.api_key = api_key
        self.timeout = timeout_seconds

    async def window(self, tenant: str, name: str, since: datetime,
                     until: datetime) -> dict[int, VersionMetrics]:
        req = observability_pb2.QueryPanelRequest(panel_id=PANEL, tenant=tenant)
        req.since.FromDatetime(since)
        req.until.FromDatetime(until)
        resp = await call_peer(self.stub.QueryPanel, req, peer="observability",
                               timeout=self.timeout, unavailable="OBSERVABILITY_UNAVAILABLE",
                               api_key=self.api_key)
        return parse_rows(name, [c.name for c in resp.columns], [_values(r) for r in resp.rows])

    async def close(self) -> None:
        await self.channel.close()


def _values(row: Any) -> list[Any]:
    out: list[Any] = []
    for v in row.values:
        kind = v.WhichOneof("kind")
        out.append(None if kind == "null_value" else getattr(v, kind) if kind else None)
    return out
