"""Evaluation runs and gate decisions <-> protobuf (the gRPC servicer and the event publisher)."""

from __future__ import annotations

from llmops.registry.v1 import evaluation_pb2 as pb
from llmops_kit.evaluation.proto import result_pb
from llmops_registry.api.convert import _ts
from llmops_registry.domain.evaluation_model import EvaluationRun
from llmops_registry.domain.gate import GateCheck


def run_pb(run: EvaluationRun) -> pb.EvaluationRun:
    return pb.EvaluationRun(
        id=run.id, tenant_id=run.tenant, model_name=run.model_name,
        model_version=run.model_version, prompt_name=run.prompt_name,
        prompt_version=run.prompt_version, dataset=run.dataset, created_at=_ts(run.created_at),
        created_by=run.created_by, totals=run.totals,
        results=[result_pb(r) for r in run.results])


def check_pb(c: GateCheck) -> pb.GateCheck:
    return pb.GateCheck(metric=c.metric, candidate=c.candidate, production=c.production,
                        limit=c.limit, passed=c.passed)
