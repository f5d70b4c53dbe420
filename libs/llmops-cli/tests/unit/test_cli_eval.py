"""`llmops eval run|compare` and `llmops models promote` against fake inference and registry
services on real gRPC sockets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from llmops.inference.v1 import inference_pb2 as ipb
from llmops.inference.v1 import inference_pb2_grpc
from llmops.registry.v1 import evaluation_pb2 as ev
from llmops.registry.v1 import evaluation_pb2_grpc
from llmops_cli.testing import fake_service, run

pytestmark = pytest.mark.unit

QUESTIONS = [
    {"id": "a1", "lang": "en", "question": "How many vacation days?",
     "document": "vacation-policy.md", "facts": ["25 days", "25"]},
    {"id": "a2", "lang": "en", "question": "When do carried-over days expire?",
     "document": "vacation-policy.md", "facts": ["March 31"]},
    {"id": "x1", "lang": "en", "question": "Who is the dental provider?", "document": None,
     "facts": []},
]


class FakeInference(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, served: str = "smollm2@4") -> None:
        self.requests: list[ipb.GenerateRequest] = []
        self.served = served

    def Generate(self, request, context):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        common = dict(model_version=self.served, prompt_version="rag-answer@2",
                      prompt_tokens=120, completion_tokens=9, request_id=f"r-{len(self.requests)}",
                      output_safety=ipb.SAFETY_OUTCOME_ALLOW,
                      stages=[ipb.StageLatency(stage="total", milliseconds=100.0 * len(self.requests))])
        if "vacation" in request.question:
            return ipb.GenerateResponse(answer="You get 25 days [1].", citations=[
                ipb.Citation(document_id="vacation-policy.md", marker=1)], **common)
        if "expire" in request.question:
            return ipb.GenerateResponse(answer="They expire at the end of April [1].",
                                        citations=[ipb.Citation(document_id="other.md")], **common)
        return ipb.GenerateResponse(answer="The documents do not cover this.",
                                    refusal="WEAK_RETRIEVAL", **common)


class FakeEvaluations(evaluation_pb2_grpc.EvaluationServiceServicer):
    def __init__(self) -> None:
        self.recorded: list[ev.RecordEvaluationRunRequest] = []
        self.runs: dict[str, ev.EvaluationRun] = {}
        self.promote: ev.PromoteResponse | None = None

    def RecordEvaluationRun(self, request, context):  # type: ignore[no-untyped-def]
        self.recorded.append(request)
        return ev.EvaluationRun(id="ev-1", model_name=request.model_name,
                                model_version=request.model_version, dataset=request.dataset,
                                totals={"questions": 3.0, "holds_fact": 0.5},
                                results=request.results)

    def GetEvaluationRun(self, request, context):  # type: ignore[no-untyped-def]
        return self.runs[request.id]

    def Promote(self, request, context):  # type: ignore[no-untyped-def]
        self.last_promote = request
        if self.promote is None:
            context.set_trailing_metadata((("x-error-reason", "GATE_FAILED"),))
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "gate failed: m@3 vs production m@2; holds_fact 0.5 >= 1: FAILED")
        return self.promote


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Any:
    inference, evaluations = FakeInference(), FakeEvaluations()
    with fake_service(inference_pb2_grpc.add_InferenceServiceServicer_to_server, inference,
                      "LLMOPS_INFERENCE_ADDR", monkeypatch), \
            fake_service(evaluation_pb2_grpc.add_EvaluationServiceServicer_to_server,
                         evaluations, "LLMOPS_REGISTRY_ADDR", monkeypatch):
        yield inference, evaluations


def write_set(path: Path) -> Path:
    path.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n", encoding="utf-8")
    return path


def test_eval_run_pins_the_version_judges_and_records(services, tmp_path: Path, capsys) -> None:
    inference, evaluations = services
    questions = write_set(tmp_path / "set.jsonl")
    code = run(["eval", "run", "--model", "smollm2@4", "--prompt", "rag-answer@staging",
                "--dataset", str(questions), "--no-groundedness", "--json", "--tenant", "acme"])
    assert code == 0, capsys.readouterr().err
    assert [(r.model_version, r.no_cache, r.prompt_name, r.prompt_label, r.model_alias)
            for r in inference.requests] == [(4, True, "rag-answer", "staging", "")] * 3
    sent = evaluations.recorded[0]
    assert (sent.model_name, sent.model_version, sent.prompt_name, sent.prompt_version) == \
        ("smollm2", 4, "rag-answer", 2)
    assert sent.dataset.startswith("set.jsonl@") and len(sent.dataset) == len("set.jsonl@") + 12
    got = {r.question_id: r for r in sent.results}
    assert (got["a1"].holds_fact, got["a1"].cited, got["a1"].latency_ms) == (True, True, 100.0)
    assert (got["a2"].holds_fact, got["a2"].cited) == (False, False)
    assert (got["x1"].answerable, got["x1"].refusal, got["x1"].safety) == \
        (False, "WEAK_RETRIEVAL", "allow")
    assert got["a1"].prompt_tokens == 120 and not got["a1"].HasField("groundedness")
    assert json.loads(capsys.readouterr().out)["id"] == "ev-1"


def test_eval_run_reads_an_eval_dataset_and_refuses_other_kinds(services, tmp_path: Path,
                                                                monkeypatch, capsys) -> None:
    _, evaluations = services
    folder = tmp_path / "acme" / "ds-00112233aabbccdd"
    folder.mkdir(parents=True)
    write_set(folder / "records.jsonl")
    (folder / "manifest.json").write_text(json.dumps({"id": folder.name, "kind": "eval"}))
    monkeypatch.setenv("LLMOPS_DATASETS_ROOT", str(tmp_path))
    assert run(["eval", "run", "--model", "smollm2@4", "--dataset", "ds-00112233aabbccdd",
                "--no-groundedness", "--tenant", "acme", "--limit", "2"]) == 0
    assert evaluations.recorded[0].dataset == "ds-00112233aabbccdd"
    assert len(evaluations.recorded[0].results) == 2
    (folder / "manifest.json").write_text(json.dumps({"id": folder.name, "kind": "chat"}))
    assert run(["eval", "run", "--model", "smollm2@4", "--dataset", "ds-00112233aabbccdd",
                "--no-groundedness", "--tenant", "acme"]) == 2
    assert "of kind 'chat', not eval" in capsys.readouterr().err
    assert run(["eval", "run", "--model", "smollm2", "--dataset", "ds-00112233aabbccdd",
                "--tenant", "acme"]) == 2
    assert "model must be NAME@VERSION" in capsys.readouterr().err


def test_eval_run_refuses_to_record_what_another_version_answered(services, tmp_path: Path,
                                                                  capsys) -> None:
    inference, evaluations = services
    inference.served = "smollm2@1"
    assert run(["eval", "run", "--model", "smollm2@4", "--dataset",
                str(write_set(tmp_path / "s.jsonl")), "--no-groundedness",
                "--tenant", "acme"]) == 1
    assert "inference served smollm2@1, not smollm2@4" in capsys.readouterr().err
    assert evaluations.recorded == []


def result(qid: str, **kw: Any) -> ev.EvaluationResult:
    return ev.EvaluationResult(question_id=qid, question=f"{qid}?", answerable=True, **kw)


def test_eval_compare_shows_deltas_and_changed_questions(services, capsys) -> None:
    _, evaluations = services
    evaluations.runs["ev-a"] = ev.EvaluationRun(
        id="ev-a", model_name="m", model_version=1, dataset="set",
        totals={"holds_fact": 0.5, "latency_p95_ms": 900.0},
        results=[result("q1", holds_fact=True), result("q2")])
    evaluations.runs["ev-b"] = ev.EvaluationRun(
        id="ev-b", model_name="m", model_version=2, dataset="set",
        totals={"holds_fact": 1.0, "latency_p95_ms": 1000.0},
        results=[result("q1", holds_fact=True), result("q2", holds_fact=True, cited=True)])
    assert run(["eval", "compare", "ev-a", "ev-b", "--json", "--tenant", "acme"]) == 0
    out = json.loads(capsys.readouterr().out)
    metrics = {m["metric"]: m for m in out["metrics"]}
    assert metrics["holds_fact"]["delta"] == 0.5 and metrics["latency_p95_ms"]["delta"] == 100.0
    assert out["changed"] == [{"question_id": "q2", "question": "q2?", "changes": {
        "holds_fact": [False, True], "cited": [False, True]}}]
    assert run(["eval", "compare", "ev-a", "ev-b", "--tenant", "acme"]) == 0
    text = capsys.readouterr().out
    assert "holds_fact" in text and "+0.500" in text and "1 question(s) changed" in text


def test_models_promote_prints_the_verdict_or_the_refusal(services, capsys) -> None:
    _, evaluations = services
    assert run(["models", "promote", "m@3", "--tenant", "acme"]) == 1
    err = capsys.readouterr().err
    assert "FAILED_PRECONDITION" in err and "holds_fact 0.5 >= 1: FAILED" in err
    evaluations.promote = ev.PromoteResponse(
        allowed=False, overridden=True, reason="gate failed: ...", previous_version=2,
        version=3, changed=True, checks=[ev.GateCheck(metric="holds_fact", candidate=0.5,
                                                     production=1.0, limit=1.0, passed=False)])
    assert run(["models", "promote", "m@3", "--override", "hotfix", "--dataset", "set",
                "--tenant", "acme"]) == 0
    assert (evaluations.last_promote.override_reason, evaluations.last_promote.dataset,
            evaluations.last_promote.version) == ("hotfix", "set", 3)
    out = capsys.readouterr().out
    assert "production v2 -> v3 (overridden)" in out and "holds_fact: candidate 0.5" in out
