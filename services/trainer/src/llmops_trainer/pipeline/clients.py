"""Continuous training's adapters: dataset versions from the trainer's catalogue, evaluation
through inference (the kit's evaluation runner, as `llmops eval run`) recorded in the
registry's EvaluationService, and the registry's RolloutService."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import grpc

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops.registry.v1 import (
    evaluation_pb2,
    evaluation_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    rollout_pb2,
    rollout_pb2_grpc,
)
from llmops_kit.errors import FailedPrecondition, NotFound
from llmops_kit.evaluation.proto import result_pb
from llmops_kit.evaluation.runner import DatasetStoreSets, load_set, run_set, split_ref
from llmops_kit.grpc_client import call_peer
from llmops_trainer.datasets.catalogue import SqlCatalogue
from llmops_trainer.pipeline.keys import TenantKeys
from llmops_trainer.pipeline.ports import CanaryInfo, DatasetRef, EvalRun, GateRefused
from llmops_trainer.pipeline.settings import CanaryPolicy, TenantPolicy

_CANARY_STATE = {rollout_pb2.CANARY_STATE_PROGRESSING: "PROGRESSING",
                 rollout_pb2.CANARY_STATE_PROMOTED: "PROMOTED",
                 rollout_pb2.CANARY_STATE_ROLLED_BACK: "ROLLED_BACK",
                 rollout_pb2.CANARY_STATE_ABORTED: "ABORTED"}


class CatalogueIndex:
    """DatasetIndex over the trainer's dataset catalogue (datasets/catalogue.py)."""

    def __init__(self, catalogue: SqlCatalogue) -> None:
        self.catalogue = catalogue

    def newest(self, tenant: str, kinds: Sequence[str], names: Sequence[str]
               ) -> DatasetRef | None:
        for e in self.catalogue.list(tenant, limit=500):
            if e.kind in kinds and (not names or e.name in names):
                return DatasetRef(e.id, e.kind, e.name)
        return None

    def eval_set(self, tenant: str, ref: str) -> str | None:
        if ref.startswith("ds-"):
            entry = self.catalogue.get(tenant, ref)
            return entry.id if entry is not None and entry.kind == "eval" else None
        for e in self.catalogue.list(tenant, kind="eval", limit=500):
            if e.name == ref:
                return e.id
        return None


class _Peer:
    def __init__(self, address: str, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None

    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


class GrpcEvaluator:
    """Evaluator: every question through inference's Generate with the version pinned (the
    answer cache off, greedy), judged by llmops_kit.evaluation, the run recorded in the
    registry. Groundedness is not waited for (the gate skips a metric production's run lacks)."""

    def __init__(self, keys: TenantKeys, inference_address: str, registry_address: str,
                 datasets_root: str | Path, timeout: float = 30.0) -> None:
        self.keys = keys
        self.inference = _Peer(inference_address, timeout)
        self.registry = _Peer(registry_address, timeout)
        self.sets = DatasetStoreSets(datasets_root)

    async def close(self) -> None:
        await self.inference.close()
        await self.registry.close()

    async def evaluate(self, tenant: str, model: str, version: int, eval_dataset: str,
                       policy: TenantPolicy) -> EvalRun:
        evalset = await asyncio.to_thread(load_set, eval_dataset, tenant, self.sets)
        questions = evalset.questions[: policy.eval_limit] if policy.eval_limit \
            else evalset.questions
        prompt_name, prompt_label = split_ref(policy.prompt, "prompt", "production")
        stub = inference_pb2_grpc.InferenceServiceStub(self.inference.channel())
        evaluations = evaluation_pb2_grpc.EvaluationServiceStub(self.registry.channel())
        async with self.keys.key(tenant, f"evaluate {model}@{version}") as key:
            async def generate(req: inference_pb2.GenerateRequest
                               ) -> inference_pb2.GenerateResponse:
                async def once() -> inference_pb2.GenerateResponse:
                    return await call_peer(stub.Generate, req, peer="inference",
                                           timeout=policy.eval_timeout_seconds,
                                           unavailable="INFERENCE_UNAVAILABLE", api_key=key)
                return await self.keys.first_call(once)

            outcome = await run_set(generate, questions, model, version, prompt_name,
                                    prompt_label, policy.max_new_tokens, None)
            if outcome.mismatched:
                raise FailedPrecondition(
                    "VERSION_NOT_SERVED", f"inference served {', '.join(outcome.mismatched)}, "
                    f"not {model}@{version}")
            request = evaluation_pb2.RecordEvaluationRunRequest(
                model_name=model, model_version=version, prompt_name=prompt_name,
                prompt_version=outcome.prompt_version, dataset=evalset.name,
                results=[result_pb(r) for r in outcome.results])
            run = await self.keys.first_call(lambda: call_peer(
                evaluations.RecordEvaluationRun, request,
                peer=f"model registry at {self.registry.address}",
                timeout=self.registry.timeout, unavailable="REGISTRY_UNAVAILABLE", api_key=key))
        return EvalRun(run.id, dict(run.totals))


def _info(c: rollout_pb2.Canary) -> CanaryInfo:
    return CanaryInfo(_CANARY_STATE.get(c.state, "UNSPECIFIED"), c.candidate_version, c.share,
                      c.reason)


class GrpcRollout:
    """Rollout over the registry's ModelRegistryService and RolloutService."""

    def __init__(self, keys: TenantKeys, registry_address: str, timeout: float = 30.0) -> None:
        self.keys = keys
        self.peer = _Peer(registry_address, timeout)

    async def close(self) -> None:
        await self.peer.close()

    async def _call(self, tenant: str, purpose: str, rpc_name: str, stub_type: type,
                    request: object) -> object:
        stub = stub_type(self.peer.channel())
        async with self.keys.key(tenant, purpose) as key:
            return await self.keys.first_call(lambda: call_peer(
                getattr(stub, rpc_name), request, peer=f"model registry at {self.peer.address}",
                timeout=self.peer.timeout, unavailable="REGISTRY_UNAVAILABLE", api_key=key))

    async def production(self, tenant: str, model: str) -> int | None:
        try:
            found = await self._call(tenant, f"read {model}@production", "GetModelVersion",
                                     registry_pb2_grpc.ModelRegistryServiceStub,
                                     registry_pb2.GetModelVersionRequest(name=model,
                                                                         alias="production"))
        except NotFound:
            return None
        assert isinstance(found, registry_pb2.ModelVersion)
        return found.version

    async def start_canary(self, tenant: str, model: str, version: int, canary: CanaryPolicy,
                           reason: str) -> CanaryInfo:
        c = canary
        request = rollout_pb2.StartCanaryRequest(
            name=model, candidate_version=version, share=c.share, step=c.step,
            max_share=c.max_share, interval_seconds=c.interval_seconds, threshold=c.threshold,
            reason=reason, thresholds=rollout_pb2.CanaryThresholds(
                max_error_rate_increase=c.max_error_rate_increase,
                max_latency_ratio=c.max_latency_ratio,
                max_safety_block_increase=c.max_safety_block_increase,
                max_groundedness_drop=c.max_groundedness_drop,
                max_negative_feedback_increase=c.max_negative_feedback_increase,
                min_requests=c.min_requests))
        try:
            started = await self._call(tenant, f"canary {model}@{version}", "StartCanary",
                                       rollout_pb2_grpc.RolloutServiceStub, request)
        except FailedPrecondition as exc:
            if exc.reason == "GATE_REFUSED":
                raise GateRefused(str(exc)) from None
            if exc.reason == "CANARY_IN_PROGRESS":
                # Started before a restart of ours? Then it is this loop's canary.
                current = await self.canary(tenant, model)
                if current is not None and current.candidate == version:
                    return current
            raise
        assert isinstance(started, rollout_pb2.Canary)
        return _info(started)

    async def canary(self, tenant: str, model: str) -> CanaryInfo | None:
        try:
            found = await self._call(tenant, f"read the canary of {model}", "GetCanary",
                                     rollout_pb2_grpc.RolloutServiceStub,
                                     rollout_pb2.GetCanaryRequest(name=model))
        except NotFound:
            return None
        assert isinstance(found, rollout_pb2.Canary)
        return _info(found)
