"""RolloutService over a real gRPC socket (SQLite and Postgres, real Kafka): roles, reasons
in `x-error-reason`, the promotion gate, and the canary's alias changes on the bus."""

from __future__ import annotations

import grpc
import pytest

from llmops.registry.v1 import registry_pb2 as pb
from llmops.registry.v1 import rollout_pb2 as rpb
from llmops.registry.v1 import rollout_pb2_grpc
from llmops_kit.testing import error_reason
from llmops_registry.adapters.promotion_gate import NoGate
from llmops_registry.ports_rollout import GateResult

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ACME = (("x-api-key", "dev-key-acme"),)
MEMBER = (("x-api-key", "dev-key-acme-member"),)


class Allow:
    async def check(self, tenant: str, name: str, candidate: int,
                    production: int | None) -> GateResult:
        return GateResult(True, "stand-in: not worse")


async def failed(call: object) -> tuple[grpc.StatusCode, str | None]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code(), error_reason(info.value)


async def test_rollout_rpcs(running, unique, registry_kit, kafka) -> None:  # type: ignore[no-untyped-def]
    stub = rollout_pb2_grpc.RolloutServiceStub(running.channel)
    name = f"canary-{unique}"
    for _ in range(2):
        await running.stub.RegisterModelVersion(pb.RegisterModelVersionRequest(
            name=name, artifact_uri="file:///m", format="hf"), metadata=ACME)
    await running.stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=1),
                                metadata=ACME)
    start = rpb.StartCanaryRequest(name=name, candidate_version=2, share=10, interval_seconds=5)
    assert await failed(stub.GetCanary(rpb.GetCanaryRequest(name=name), metadata=ACME)) == (
        grpc.StatusCode.NOT_FOUND, "CANARY_NOT_FOUND")
    assert await failed(stub.StartCanary(start, metadata=MEMBER)) == (
        grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")
    bad = rpb.StartCanaryRequest(name=name, candidate_version=2, share=101)
    assert await failed(stub.StartCanary(bad, metadata=ACME)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "BAD_SHARE")
    # No evaluation gate configured: refused unless overridden with a reason.
    running.registry.rollouts.gate = NoGate()
    assert await failed(stub.StartCanary(start, metadata=ACME)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "GATE_REFUSED")
    running.registry.rollouts.gate = Allow()
    canary = await stub.StartCanary(start, metadata=ACME)
    assert (canary.state, canary.share, canary.production_version, canary.candidate_version,
            canary.tenant_id) == (rpb.CANARY_STATE_PROGRESSING, 10, 1, 2, "acme")
    assert canary.candidate.version == 2 and canary.candidate.artifact_uri == "file:///m"
    assert canary.thresholds.min_requests == 20  # the registry's default
    assert canary.HasField("next_check_at")
    assert await failed(stub.StartCanary(start, metadata=ACME)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "CANARY_IN_PROGRESS")
    got = await stub.GetCanary(rpb.GetCanaryRequest(name=name), metadata=MEMBER)
    assert got.candidate_version == 2
    assert await failed(stub.Rollback(rpb.RollbackRequest(name=name), metadata=MEMBER)) == (
        grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")
    back = await stub.Rollback(rpb.RollbackRequest(name=name, reason="bad"), metadata=ACME)
    assert (back.from_version, back.to_version, back.canary.state) == (
        1, 1, rpb.CANARY_STATE_ROLLED_BACK)
    history = await stub.GetRolloutHistory(rpb.GetRolloutHistoryRequest(name=name),
                                           metadata=MEMBER)
    assert [(c.alias, c.from_version, c.to_version) for c in history.changes] == [
        ("canary", 2, 0), ("canary", 0, 2), ("production", 0, 1)]
    assert history.changes[0].reason == "rolled back v2 at 10% by request: bad"
    # Each move went out as ModelAliasChanged (what inference replicas follow).
    records = await registry_kit.read(kafka, running.topics.model_alias_changed.topic, 3,
                                      key=name)
    reasons = [pb.ModelAliasChanged.FromString(r.value).change.reason for r in records]
    assert reasons[1].startswith("canary of v2 started at 10%")
    assert reasons[2] == "rolled back v2 at 10% by request: bad"
