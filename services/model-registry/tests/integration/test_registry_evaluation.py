"""EvaluationService over a real gRPC socket on SQLite and Postgres, with real Kafka: runs are
recorded, read and listed per tenant, EvaluationCompleted is published, and Promote moves the
tenant's production alias only through the gate (or an override), recording the verdict."""

from __future__ import annotations

import grpc
import pytest

from llmops.registry.v1 import evaluation_pb2 as ev
from llmops.registry.v1 import evaluation_pb2_grpc
from llmops.registry.v1 import registry_pb2 as pb
from llmops_kit.testing import error_reason

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ACME = (("x-api-key", "dev-key-acme"),)
ACME_MEMBER = (("x-api-key", "dev-key-acme-member"),)
GLOBEX = (("x-api-key", "dev-key-globex"),)


async def fails(call: object, code: grpc.StatusCode) -> tuple[str | None, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() is code, info.value.details()
    return error_reason(info.value), info.value.details() or ""


def results(holds: list[bool], latency: float = 100.0) -> list[ev.EvaluationResult]:
    """One answerable question per entry (holds and cites when True) and one not covered."""
    out = [ev.EvaluationResult(question_id=f"q{i}", question=f"question {i}?", answerable=True,
                               answer="25 days" if h else "no idea", holds_fact=h, cited=h,
                               groundedness=0.9 if h else 0.2, latency_ms=latency + i,
                               prompt_tokens=100, completion_tokens=10, safety="allow")
           for i, h in enumerate(holds)]
    out.append(ev.EvaluationResult(question_id="x1", question="dental provider?",
                                   answerable=False, refusal="WEAK_RETRIEVAL",
                                   latency_ms=latency, safety="allow"))
    return out


async def test_runs_are_recorded_per_tenant_and_published(running, registry_kit, kafka, unique) -> None:
    stub = evaluation_pb2_grpc.EvaluationServiceStub(running.channel)
    name = f"eval-{unique}"
    await running.stub.RegisterModelVersion(pb.RegisterModelVersionRequest(
        name=name, artifact_uri="file:///models/a", format="hf"), metadata=ACME)
    run = await stub.RecordEvaluationRun(ev.RecordEvaluationRunRequest(
        model_name=name, model_version=1, prompt_name="rag-answer", prompt_version=1,
        dataset="ds-0123456789abcdef", results=results([True, True, False])), metadata=ACME)
    assert run.id.startswith("ev-") and run.tenant_id == "acme"
    t = dict(run.totals)
    assert t["questions"] == 4 and t["holds_fact"] == pytest.approx(2 / 3)
    assert t["cited"] == pytest.approx(2 / 3)
    assert t["groundedness_mean"] == pytest.approx((0.9 + 0.9 + 0.2) / 3)
    assert t["refused_when_not_covered"] == 1.0 and t["refusals"] == 0.25
    assert t["latency_p95_ms"] == 102.0 and t["latency_p50_ms"] == 100.0

    got = await stub.GetEvaluationRun(ev.GetEvaluationRunRequest(id=run.id), metadata=ACME_MEMBER)
    assert [r.question_id for r in got.results] == ["q0", "q1", "q2", "x1"]
    assert got.results[2].answer == "no idea" and got.results[3].refusal == "WEAK_RETRIEVAL"
    assert not got.results[3].HasField("groundedness")
    listed = await stub.ListEvaluationRuns(ev.ListEvaluationRunsRequest(
        model_name=name, model_version=1), metadata=ACME)
    assert [r.id for r in listed.runs] == [run.id] and not listed.runs[0].results

    # Another tenant neither sees it nor can record for a version it cannot see.
    assert (await fails(stub.GetEvaluationRun(ev.GetEvaluationRunRequest(id=run.id),
                                              metadata=GLOBEX),
                        grpc.StatusCode.NOT_FOUND))[0] == "EVALUATION_RUN_NOT_FOUND"
    assert not (await stub.ListEvaluationRuns(ev.ListEvaluationRunsRequest(model_name=name),
                                              metadata=GLOBEX)).runs
    req = ev.RecordEvaluationRunRequest(model_name=name, model_version=1, dataset="s",
                                        results=results([True]))
    assert (await fails(stub.RecordEvaluationRun(req, metadata=GLOBEX),
                        grpc.StatusCode.NOT_FOUND))[0] == "MODEL_NOT_FOUND"
    assert (await fails(stub.RecordEvaluationRun(req, metadata=ACME_MEMBER),
                        grpc.StatusCode.PERMISSION_DENIED))[0] == "ROLE_REQUIRED"
    empty = ev.RecordEvaluationRunRequest(model_name=name, model_version=1, dataset="s")
    assert (await fails(stub.RecordEvaluationRun(empty, metadata=ACME),
                        grpc.StatusCode.INVALID_ARGUMENT))[0] == "BAD_EVALUATION_RUN"

    records = await registry_kit.read(kafka,
                                      running.topics.evaluation_completed.topic, 1, key="acme")
    published = ev.EvaluationCompleted.FromString(records[0].value)
    assert published.run.id == run.id and published.envelope.tenant_id == "acme"
    assert len(published.run.results) == 4 and published.run.totals["cited"] == t["cited"]


async def test_promote_goes_through_the_gate(running, unique) -> None:
    stub = evaluation_pb2_grpc.EvaluationServiceStub(running.channel)
    name = f"gate-{unique}"
    for _ in range(4):
        await running.stub.RegisterModelVersion(pb.RegisterModelVersionRequest(
            name=name, artifact_uri="file:///models/a", format="hf"), metadata=ACME)
    await running.stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=1),
                                metadata=ACME)

    async def record(version: int, holds: list[bool], latency: float = 100.0) -> str:
        run = await stub.RecordEvaluationRun(ev.RecordEvaluationRunRequest(
            model_name=name, model_version=version, dataset="set-a",
            results=results(holds, latency)), metadata=ACME)
        return run.id

    prod_run = await record(1, [True, False])
    better = await record(2, [True, True], latency=110.0)
    done = await stub.Promote(ev.PromoteRequest(model_name=name, version=2), metadata=ACME)
    assert (done.allowed, done.changed, done.previous_version, done.version) == (True, True, 1, 2)
    assert (done.candidate_run_id, done.production_run_id) == (better, prod_run)
    checks = {c.metric: c for c in done.checks}
    assert checks["holds_fact"].candidate == 1.0 and checks["holds_fact"].production == 0.5
    assert checks["latency_p95_ms"].limit == pytest.approx(101.0 * 1.2)

    # v3 holds fewer facts than production (v2): refused, the comparison in the message.
    await record(3, [True, False])
    reason, details = await fails(stub.Promote(ev.PromoteRequest(model_name=name, version=3),
                                               metadata=ACME),
                                  grpc.StatusCode.FAILED_PRECONDITION)
    assert reason == "GATE_FAILED"
    assert "holds_fact 0.5 >= 1 (production 1): FAILED" in details
    mv = await running.stub.GetModelVersion(pb.GetModelVersionRequest(name=name,
                                                                      alias="production"),
                                            metadata=ACME)
    assert mv.version == 2

    forced = await stub.Promote(ev.PromoteRequest(model_name=name, version=3,
                                                  override_reason="hotfix for INC-42"),
                                metadata=ACME)
    assert (forced.allowed, forced.overridden, forced.version) == (False, True, 3)
    # A version without a run is refused with the reason; members cannot promote.
    _, missing = await fails(stub.Promote(ev.PromoteRequest(model_name=name, version=4),
                                          metadata=ACME), grpc.StatusCode.FAILED_PRECONDITION)
    assert f"{name}@4 has no evaluation run" in missing
    assert (await fails(stub.Promote(ev.PromoteRequest(model_name=name, version=2),
                                     metadata=ACME_MEMBER),
                        grpc.StatusCode.PERMISSION_DENIED))[0] == "ROLE_REQUIRED"

    history = await running.stub.GetAliasHistory(pb.GetAliasHistoryRequest(
        name=name, alias="production"), metadata=ACME)
    reasons = [c.reason for c in history.changes]
    assert reasons[0].startswith("promoted by override of ") and "hotfix for INC-42" in reasons[0]
    assert "gate failed" in reasons[0]
    assert reasons[1].startswith("promoted: gate passed:") and prod_run in reasons[1]
    entries = [e for e in running.registry.audit_log.entries if e.action == "model.promote"]
    assert [e.after["allowed"] for e in entries[-4:]] == [True, False, False, False]
    assert entries[-2].after["overridden"] is True
    assert entries[-2].after["override_reason"] == "hotfix for INC-42"


async def test_a_deleted_tenants_runs_go_with_it(running, unique) -> None:
    from llmops_registry.adapters.sql_tenants import SqlTenantData

    stub = evaluation_pb2_grpc.EvaluationServiceStub(running.channel)
    name = f"gone-{unique}"
    await running.stub.RegisterModelVersion(pb.RegisterModelVersionRequest(
        name=name, artifact_uri="file:///models/g", format="hf"), metadata=GLOBEX)
    run = await stub.RecordEvaluationRun(ev.RecordEvaluationRunRequest(
        model_name=name, model_version=1, dataset="s", results=results([True])), metadata=GLOBEX)
    kept = await stub.ListEvaluationRuns(ev.ListEvaluationRunsRequest(), metadata=ACME)
    await SqlTenantData(running.registry.engine).delete_tenant_data("globex")
    assert (await fails(stub.GetEvaluationRun(ev.GetEvaluationRunRequest(id=run.id),
                                              metadata=GLOBEX),
                        grpc.StatusCode.NOT_FOUND))[0] == "EVALUATION_RUN_NOT_FOUND"
    after = await stub.ListEvaluationRuns(ev.ListEvaluationRunsRequest(), metadata=ACME)
    assert [r.id for r in after.runs] == [r.id for r in kept.runs] and kept.runs
