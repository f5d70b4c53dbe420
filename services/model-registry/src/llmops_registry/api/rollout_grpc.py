"""RolloutService over gRPC: translate, call the rollout use cases, translate back.

Canaries are the caller's tenant's own: writes need `maintainer`, reads `member`.
"""

from __future__ import annotations

import grpc

from llmops.registry.v1 import rollout_pb2 as pb
from llmops.registry.v1 import rollout_pb2_grpc
from llmops_kit.auth import Role
from llmops_registry.api import convert
from llmops_registry.api.grpc import _reader, _writer
from llmops_registry.domain.canary import Canary, CanarySpec, CanaryState, Thresholds
from llmops_registry.domain.models import ModelRegistry
from llmops_registry.domain.rollout import Rollouts

SERVICE_NAME = "llmops.registry.v1.RolloutService"
ROLES = {name: Role.MEMBER for name in (
    "StartCanary", "GetCanary", "AbortCanary", "Rollback", "GetRolloutHistory")}

_STATES = {CanaryState.PROGRESSING: pb.CANARY_STATE_PROGRESSING,
           CanaryState.PROMOTED: pb.CANARY_STATE_PROMOTED,
           CanaryState.ROLLED_BACK: pb.CANARY_STATE_ROLLED_BACK,
           CanaryState.ABORTED: pb.CANARY_STATE_ABORTED}


def thresholds_pb(t: Thresholds) -> pb.CanaryThresholds:
    return pb.CanaryThresholds(
        max_error_rate_increase=t.max_error_rate_increase, max_latency_ratio=t.max_latency_ratio,
        max_safety_block_increase=t.max_safety_block_increase,
        max_groundedness_drop=t.max_groundedness_drop,
        max_negative_feedback_increase=t.max_negative_feedback_increase,
        min_requests=t.min_requests)


def thresholds_from_pb(m: pb.CanaryThresholds) -> Thresholds:
    """Unset fields are 0: Thresholds.merged fills them with the registry's defaults."""
    return Thresholds(m.max_error_rate_increase, m.max_latency_ratio,
                      m.max_safety_block_increase, m.max_groundedness_drop,
                      m.max_negative_feedback_increase, m.min_requests)


def canary_pb(c: Canary) -> pb.Canary:
    msg = pb.Canary(
        name=c.name, tenant_id=c.tenant, production_version=c.production,
        candidate_version=c.candidate, share=c.share, step=c.step, max_share=c.max_share,
        interval_seconds=c.interval_seconds, threshold=c.threshold,
        thresholds=thresholds_pb(c.thresholds), state=_STATES[c.state],
        failed_checks=c.failed_checks, last_good_version=c.last_good, reason=c.reason)
    msg.started_at.FromDatetime(c.started_at)
    msg.updated_at.FromDatetime(c.updated_at)
    if c.next_check_at is not None:
        msg.next_check_at.FromDatetime(c.next_check_at)
    return msg


class RolloutServicer(rollout_pb2_grpc.RolloutServiceServicer):
    def __init__(self, rollouts: Rollouts, models: ModelRegistry) -> None:
        self.rollouts = rollouts
        self.models = models

    async def _with_candidate(self, c: Canary) -> pb.Canary:
        msg = canary_pb(c)
        mv = await self.models.get(c.tenant, c.name, c.candidate)
        msg.candidate.CopyFrom(convert.model_version_pb(mv))
        return msg

    async def StartCanary(self, request: pb.StartCanaryRequest,
                          context: grpc.aio.ServicerContext) -> pb.Canary:
        actor = _writer("StartCanary", False)
        spec = CanarySpec(
            candidate=request.candidate_version, share=request.share or 10,
            step=request.step or 20, max_share=request.max_share or 100,
            interval_seconds=request.interval_seconds or 60, threshold=request.threshold or 2,
            thresholds=thresholds_from_pb(request.thresholds))
        canary = await self.rollouts.start(actor, request.name, spec, request.reason,
                                           request.override_gate)
        return await self._with_candidate(canary)

    async def GetCanary(self, request: pb.GetCanaryRequest,
                        context: grpc.aio.ServicerContext) -> pb.Canary:
        return await self._with_candidate(
            await self.rollouts.get(_reader("GetCanary"), request.name))

    async def AbortCanary(self, request: pb.AbortCanaryRequest,
                          context: grpc.aio.ServicerContext) -> pb.Canary:
        canary = await self.rollouts.abort(_writer("AbortCanary", False), request.name,
                                           request.reason)
        return await self._with_candidate(canary)

    async def Rollback(self, request: pb.RollbackRequest,
                       context: grpc.aio.ServicerContext) -> pb.RollbackResponse:
        before, after, canary = await self.rollouts.rollback(
            _writer("Rollback", False), request.name, request.reason)
        resp = pb.RollbackResponse(from_version=before, to_version=after)
        if canary is not None:
            resp.canary.CopyFrom(canary_pb(canary))
        return resp

    async def GetRolloutHistory(self, request: pb.GetRolloutHistoryRequest,
                                context: grpc.aio.ServicerContext
                                ) -> pb.GetRolloutHistoryResponse:
        page = await self.rollouts.history(_reader("GetRolloutHistory"), request.name,
                                           request.page.page_size, request.page.page_token)
        return pb.GetRolloutHistoryResponse(
            changes=[convert.alias_change_pb(c) for c in page.items],
            next_page_token=page.next_token)
