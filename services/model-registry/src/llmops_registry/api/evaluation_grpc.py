"""EvaluationService over gRPC: record and read evaluation runs, and Promote through the gate.

Runs are the caller's tenant's: recording needs `maintainer`, reading `member`. Promote moves
the caller's tenant's own production alias (maintainer); a shared alias is never promoted here.
"""

from __future__ import annotations

import grpc

from llmops.registry.v1 import evaluation_pb2 as pb
from llmops.registry.v1 import evaluation_pb2_grpc
from llmops_kit.evaluation.proto import result_from_pb
from llmops_registry.api.evaluation_convert import check_pb, run_pb
from llmops_registry.api.grpc import _reader, _writer
from llmops_registry.domain.evaluation import Evaluations
from llmops_registry.domain.promotion import Promoter

SERVICE_NAME = "llmops.registry.v1.EvaluationService"


class EvaluationServicer(evaluation_pb2_grpc.EvaluationServiceServicer):
    def __init__(self, evaluations: Evaluations, promoter: Promoter) -> None:
        self.evaluations = evaluations
        self.promoter = promoter

    async def RecordEvaluationRun(self, request: pb.RecordEvaluationRunRequest,
                                  context: grpc.aio.ServicerContext) -> pb.EvaluationRun:
        actor = _writer("RecordEvaluationRun", shared=False)
        new = self.evaluations.validate_new(
            request.model_name, request.model_version, request.prompt_name,
            request.prompt_version, request.dataset,
            [result_from_pb(r) for r in request.results])
        return run_pb(await self.evaluations.record(actor, new))

    async def GetEvaluationRun(self, request: pb.GetEvaluationRunRequest,
                               context: grpc.aio.ServicerContext) -> pb.EvaluationRun:
        return run_pb(await self.evaluations.get(_reader("GetEvaluationRun"), request.id))

    async def ListEvaluationRuns(self, request: pb.ListEvaluationRunsRequest,
                                 context: grpc.aio.ServicerContext
                                 ) -> pb.ListEvaluationRunsResponse:
        page = await self.evaluations.list(
            _reader("ListEvaluationRuns"), request.model_name, request.model_version,
            request.dataset, request.page.page_size, request.page.page_token)
        return pb.ListEvaluationRunsResponse(runs=[run_pb(r) for r in page.items],
                                             next_page_token=page.next_token)

    async def Promote(self, request: pb.PromoteRequest,
                      context: grpc.aio.ServicerContext) -> pb.PromoteResponse:
        actor = _writer("Promote", shared=False)
        # A refusal (GateFailed) is FAILED_PRECONDITION GATE_FAILED, the comparison in its message.
        done = await self.promoter.promote(actor, request.model_name, request.version,
                                           request.dataset, request.override_reason)
        d = done.decision
        return pb.PromoteResponse(
            allowed=d.allowed, reason=d.reason, checks=[check_pb(c) for c in d.checks],
            previous_version=done.move.previous_version, version=done.move.version,
            changed=done.move.changed, overridden=done.overridden,
            candidate_run_id=d.candidate_run, production_run_id=d.production_run)
