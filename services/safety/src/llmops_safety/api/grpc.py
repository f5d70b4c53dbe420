"""SafetyService servicer: proto <-> domain. Auth and error mapping live in the kit's wrapper.

The tenant is the caller's, resolved from its API key (`current_tenant()`); nothing in a
request can name another tenant's policy.
"""

from __future__ import annotations

from typing import Any

import grpc

from llmops.safety.v1 import safety_pb2, safety_pb2_grpc
from llmops_kit.auth import Role
from llmops_kit.context import current_tenant
from llmops_kit.errors import InvalidArgument, Unauthenticated
from llmops_safety.api.convert import (
    DIRECTION_FROM_PB,
    INJECTION_ACTION_TO_PB,
    VERDICT_TO_PB,
    findings_pb,
    tenant_policy_pb,
)
from llmops_safety.domain.model import ALL_CATEGORIES
from llmops_safety.domain.service import SafetyService

SERVICE_FULL_NAME = safety_pb2.DESCRIPTOR.services_by_name["SafetyService"].full_name
# The least role each RPC needs (enforced by the kit's gRPC wrapper).
ROLES = {"CheckText": Role.MEMBER, "Redact": Role.MEMBER, "GetInfo": Role.MEMBER}


def _tenant() -> str:
    tenant = current_tenant()
    if not tenant:  # the kit's auth wrapper always binds one; never fall back to a default
        raise Unauthenticated("NO_TENANT", "no tenant bound to this call")
    return tenant


class SafetyServicer(safety_pb2_grpc.SafetyServiceServicer):  # type: ignore[misc]
    def __init__(self, service: SafetyService, stats: Any = None) -> None:
        self.service = service
        # The event publisher's counters (published / failed / dropped), reported by GetInfo.
        self.stats = stats

    async def CheckText(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> safety_pb2.CheckTextResponse:
        direction = DIRECTION_FROM_PB.get(request.direction)
        if direction is None:
            raise InvalidArgument(
                "DIRECTION_REQUIRED",
                "direction must be DIRECTION_INPUT, DIRECTION_OUTPUT or DIRECTION_CONTEXT")
        result = await self.service.check_text(_tenant(), request.text, direction)
        return safety_pb2.CheckTextResponse(
            verdict=VERDICT_TO_PB[result.verdict],
            scores=result.analysis.scores,
            findings=findings_pb(result.analysis.findings, result.replacements),
            redacted_text=result.redacted_text,
            toxicity_backend=result.analysis.toxicity_backend,
            reasons=list(result.reasons),
            injection_action=(INJECTION_ACTION_TO_PB[result.injection_action]
                              if result.injection_action
                              else safety_pb2.INJECTION_ACTION_UNSPECIFIED),
        )

    async def Redact(self, request: Any, context: grpc.aio.ServicerContext) -> safety_pb2.RedactResponse:
        _tenant()
        result = await self.service.redact(request.text, list(request.categories))
        return safety_pb2.RedactResponse(redacted_text=result.text,
                                         findings=findings_pb(result.findings))

    async def GetInfo(self, request: Any, context: grpc.aio.ServicerContext) -> safety_pb2.GetInfoResponse:
        info = self.service.info(_tenant())
        response = safety_pb2.GetInfoResponse(
            toxicity_backend=info.toxicity_backend,
            toxicity_backend_detail=info.toxicity_backend_detail,
            tenant=info.tenant,
            policy=tenant_policy_pb(info.policy),
            policy_source=info.policy_source,
            categories=list(ALL_CATEGORIES),
        )
        if self.stats is not None:
            response.events_published = self.stats.published
            response.events_failed = self.stats.failed
            response.events_dropped = self.stats.dropped
        return response
