"""`llmops eval run|compare` and `llmops models promote`: evaluation runs and the promotion gate.

`eval run` asks every question of an evaluation set through inference with the model version
pinned (llmops_cli.eval_runner) and records the run in the registry (EvaluationService);
`eval compare` shows two runs side by side; `models promote` moves the tenant's production
alias through the registry's gate (or with --override "reason").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import grpc
from google.protobuf.json_format import MessageToDict

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops.registry.v1 import evaluation_pb2, evaluation_pb2_grpc
from llmops_cli.client import api_key_for, metadata
from llmops_cli.eval_groundedness import KafkaGroundedness
from llmops_cli.eval_runner import DatasetStoreSets, load_set, run_set, split_ref
from llmops_kit import ports
from llmops_kit.evaluation.proto import result_from_pb, result_pb
from llmops_kit.evaluation.runs import Comparison, QuestionResult, compare
from llmops_kit.settings import KafkaSettings

TIMEOUT = 30.0


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else text)


@asynccontextmanager
async def _evaluations() -> AsyncIterator[evaluation_pb2_grpc.EvaluationServiceAsyncStub]:
    async with grpc.aio.insecure_channel(
            os.environ.get("LLMOPS_REGISTRY_ADDR", ports.service_address("model-registry"))) as ch:
        yield cast("evaluation_pb2_grpc.EvaluationServiceAsyncStub",
                   evaluation_pb2_grpc.EvaluationServiceStub(ch))


def _run_dict(run: evaluation_pb2.EvaluationRun) -> dict[str, Any]:
    return MessageToDict(run, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


def _fmt(value: float | None, metric: str = "") -> str:
    if value is None:
        return "-"
    if metric == "questions" or metric.endswith("_ms") or "tokens" in metric:
        return f"{value:.0f}"
    return f"{value:.3f}"


def _delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _totals_lines(totals: dict[str, float]) -> list[str]:
    order = ("questions", "holds_fact", "cited", "groundedness_mean", "refused_when_not_covered",
             "refused_when_covered", "refusals", "blocked", "errors", "latency_p50_ms",
             "latency_p95_ms", "prompt_tokens_mean", "completion_tokens_mean")
    return [f"  {m:<26} {_fmt(totals[m], m)}" for m in order if m in totals]


# ------------------------------------------------------------------ eval run

async def cmd_eval_run(args: argparse.Namespace) -> int:
    try:
        model, version_text = split_ref(args.model, "model")
        prompt_name, prompt_label = split_ref(args.prompt, "prompt", "production")
        version = int(version_text)
        if version < 1:
            raise ValueError("the model version must be a number >= 1")
        evalset = load_set(args.dataset, args.tenant, DatasetStoreSets())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    questions = evalset.questions[: args.limit] if args.limit else evalset.questions
    md = metadata(api_key_for(args.tenant, args.api_key))
    groundedness = None if args.no_groundedness else KafkaGroundedness(
        KafkaSettings(), args.groundedness_timeout)

    def progress(i: int, r: QuestionResult) -> None:
        if not args.json:
            mark = "error" if r.error else ("refused" if r.refused else
                                            ("ok" if r.holds_fact else "miss"))
            print(f"[{i}/{len(questions)}] {r.question_id}: {mark}", file=sys.stderr)

    async with grpc.aio.insecure_channel(
            os.environ.get("LLMOPS_INFERENCE_ADDR", ports.service_address("inference"))) as ch:
        stub = inference_pb2_grpc.InferenceServiceStub(ch)

        async def generate(req: inference_pb2.GenerateRequest) -> inference_pb2.GenerateResponse:
            resp: inference_pb2.GenerateResponse = await stub.Generate(
                req, metadata=md, timeout=args.timeout)
            return resp

        outcome = await run_set(generate, questions, model, version, prompt_name, prompt_label,
                                args.max_new_tokens, groundedness, progress)
    if outcome.mismatched:
        print(f"error: inference served {', '.join(outcome.mismatched)}, not {model}@{version} "
              "(inference serves one model name: LLMOPS_INFERENCE_DEFAULT_MODEL_NAME)",
              file=sys.stderr)
        return 1
    async with _evaluations() as stub_e:
        run = await stub_e.RecordEvaluationRun(evaluation_pb2.RecordEvaluationRunRequest(
            model_name=model, model_version=version, prompt_name=prompt_name,
            prompt_version=outcome.prompt_version, dataset=evalset.name,
            results=[result_pb(r) for r in outcome.results]), metadata=md, timeout=TIMEOUT)
    lines = [f"run {run.id}: {model}@{version}, prompt {prompt_name}@{outcome.prompt_version}, "
             f"set {run.dataset}", *_totals_lines(dict(run.totals))]
    _emit(args, _run_dict(run), "\n".join(lines))
    return 0


# ------------------------------------------------------------------ eval compare

def comparison_dict(c: Comparison) -> dict[str, Any]:
    return {"metrics": [{"metric": m.metric, "a": m.a, "b": m.b, "delta": m.delta}
                        for m in c.metrics],
            "changed": [{"question_id": q.question_id, "question": q.question,
                         "changes": {k: list(v) for k, v in q.changes.items()}}
                        for q in c.changed],
            "only_a": c.only_a, "only_b": c.only_b}


def comparison_text(a: evaluation_pb2.EvaluationRun, b: evaluation_pb2.EvaluationRun,
                    c: Comparison) -> str:
    head = [f"A {a.id}: {a.model_name}@{a.model_version} on {a.dataset}",
            f"B {b.id}: {b.model_name}@{b.model_version} on {b.dataset}", "",
            f"  {'metric':<26} {'A':>9} {'B':>9} {'B-A':>9}"]
    rows = [f"  {m.metric:<26} {_fmt(m.a, m.metric):>9} {_fmt(m.b, m.metric):>9} "
            f"{_delta(m.delta):>9}" for m in c.metrics]
    changed = [f"  {q.question_id}: " + ", ".join(f"{k} {v[0]!r} -> {v[1]!r}"
                                                   for k, v in q.changes.items())
               for q in c.changed]
    tail = ["", f"{len(c.changed)} question(s) changed" + (":" if changed else ""), *changed]
    if a.dataset != b.dataset:
        tail.append("note: the runs are on different evaluation sets")
    return "\n".join(head + rows + tail)


async def cmd_eval_compare(args: argparse.Namespace) -> int:
    md = metadata(api_key_for(args.tenant, args.api_key))
    async with _evaluations() as stub:
        a = await stub.GetEvaluationRun(evaluation_pb2.GetEvaluationRunRequest(id=args.run_a),
                                        metadata=md, timeout=TIMEOUT)
        b = await stub.GetEvaluationRun(evaluation_pb2.GetEvaluationRunRequest(id=args.run_b),
                                        metadata=md, timeout=TIMEOUT)
    c = compare(dict(a.totals), dict(b.totals), [result_from_pb(r) for r in a.results],
                [result_from_pb(r) for r in b.results])
    _emit(args, {"a": a.id, "b": b.id, **comparison_dict(c)}, comparison_text(a, b, c))
    return 0


# ------------------------------------------------------------------ models promote

async def cmd_models_promote(args: argparse.Namespace) -> int:
    try:
        model, version_text = split_ref(args.model, "model")
        version = int(version_text)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    md = metadata(api_key_for(args.tenant, args.api_key))
    async with _evaluations() as stub:
        resp = await stub.Promote(evaluation_pb2.PromoteRequest(
            model_name=model, version=version, dataset=args.dataset,
            override_reason=args.override or ""), metadata=md, timeout=TIMEOUT)
    verdict = "overridden" if resp.overridden else "gate passed"
    moved = (f"production v{resp.previous_version} -> v{resp.version}"
             if resp.changed else f"production already v{resp.version}")
    lines = [f"{model}: {moved} ({verdict})", resp.reason]
    lines += [f"  {c.metric}: candidate {c.candidate:.4g}, production {c.production:.4g}, "
              f"limit {c.limit:.4g}: {'ok' if c.passed else 'FAILED'}" for c in resp.checks]
    _emit(args, MessageToDict(resp, preserving_proto_field_name=True,
                              always_print_fields_with_no_presence=True), "\n".join(lines))
    return 0


def _subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str
                 ) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The sub-command group of an existing command (`models`, added by registry_cmds)."""
    parser = sub.choices[name]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError(f"`{name}` has no sub-commands")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 parents: list[argparse.ArgumentParser]) -> None:
    """Adds `eval run|compare` and `models promote` (after registry_cmds added `models`)."""
    ev = sub.add_parser("eval", help="evaluation runs of model versions").add_subparsers(
        dest="eval_cmd", required=True)
    run = ev.add_parser("run", parents=parents,
                        help="ask an evaluation set through inference and record the run")
    run.add_argument("--model", required=True, help="NAME@VERSION (the version is pinned)")
    run.add_argument("--prompt", default="rag-answer@production", help="NAME@LABEL")
    run.add_argument("--dataset", required=True,
                     help="evaluation dataset id (ds-..., kind eval) or a JSONL file")
    run.add_argument("--max-new-tokens", type=int, default=128)
    run.add_argument("--timeout", type=float, default=300, help="per question, seconds")
    run.add_argument("--limit", type=int, default=0, help="only the first N questions")
    run.add_argument("--no-groundedness", action="store_true",
                     help="do not wait for inference's groundedness scores on the bus")
    run.add_argument("--groundedness-timeout", type=float, default=60.0)
    run.set_defaults(func=cmd_eval_run)
    cmp_ = ev.add_parser("compare", parents=parents, help="two runs side by side (B - A)")
    cmp_.add_argument("run_a")
    cmp_.add_argument("run_b")
    cmp_.set_defaults(func=cmd_eval_compare)

    promote = _subcommands(sub, "models").add_parser(
        "promote", parents=parents,
        help="move the tenant's production alias through the evaluation gate")
    promote.add_argument("model", help="NAME@VERSION")
    promote.add_argument("--dataset", default="",
                         help="evaluation set both runs must be on (default: the tenant's, "
                              "else the candidate's latest run's)")
    promote.add_argument("--override", default=None, metavar="REASON",
                         help="promote whatever the gate says; recorded with you as the actor")
    promote.set_defaults(func=cmd_models_promote)
