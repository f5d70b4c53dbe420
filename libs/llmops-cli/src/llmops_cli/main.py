"""`llmops`: the platform's command line. Every command takes --json for machines."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops.ingestion.v1 import ingestion_pb2
from llmops.safety.v1 import safety_pb2, safety_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2
from llmops_cli import (
    admin_cmds,
    datasets_cmds,
    embeddings_cmds,
    eval_cmds,
    feedback_cmds,
    registry_cmds,
    report_cmd,
    rollout_cmds,
    stack,
    train_cmds,
)
from llmops_cli.client import (
    SEARCH_MODES,
    Clients,
    api_key_for,
    document_for,
    files_to_ingest,
    metadata,
)
from llmops_kit import ports


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else text)


def _clients() -> Clients:
    return Clients(
        os.environ.get("LLMOPS_INGESTION_ADDR", ports.service_address("ingestion")),
        os.environ.get("LLMOPS_VECTORSTORE_ADDR", ports.service_address("vector-store")),
    )


async def cmd_up(args: argparse.Namespace) -> int:
    for name in stack.INFRA:
        stack.infra(name, "start")
    # All at once: they load their models in parallel and need each other only per request.
    pids = {spec.name: stack.start_service(spec) for spec in stack.SERVICES}
    healthy = await asyncio.gather(*(
        stack.wait_healthy(spec.port, timeout=args.timeout, protocol=spec.protocol)
        for spec in stack.SERVICES))
    report = {}
    for spec, ok in zip(stack.SERVICES, healthy, strict=True):
        report[spec.name] = {"pid": pids[spec.name], "port": spec.port, "healthy": ok}
        if not ok:
            log = stack.llmops_home() / "logs" / f"{spec.name}.log"
            _emit(args, report, f"{spec.name} did not become healthy; see {log}")
            return 1
    lines = [f"{n}: pid {r['pid']} port {r['port']} SERVING" for n, r in report.items()]
    _emit(args, report, "\n".join(lines))
    return 0


async def cmd_down(args: argparse.Namespace) -> int:
    for spec in reversed(stack.SERVICES):
        for replica in range(3):
            stack.stop_service(spec.name, replica)
    if not args.services_only:
        for name in reversed(stack.INFRA):
            stack.infra(name, "stop", check=False)
    _emit(args, {"stopped": True}, "stopped")
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {}
    for name in stack.INFRA:
        res = stack.infra(name, "status", check=False)
        report[name] = {"running": res.returncode == 0, "detail": res.stdout.strip()}
    for spec in stack.SERVICES:
        pid = stack.service_pid(spec.name)
        state = await stack.health(spec.port, protocol=spec.protocol)
        report[spec.name] = {"pid": pid, "port": spec.port, "health": state}
        if spec.protocol == "http" and state == "SERVING":  # generation: its numeric format
            report[spec.name].update(await stack.numeric_format(spec.port) or {})
    lines = [stack.status_line(n, v) for n, v in report.items()]
    _emit(args, report, "\n".join(lines))
    healthy = all(v.get("running", v.get("health") == "SERVING") for v in report.values())
    return 0 if healthy else 3


async def _wait_indexed(c: Clients, md: Any, ids: list[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    pending = set(ids)
    states: dict[str, Any] = {}
    while pending and time.monotonic() < deadline:
        for doc_id in list(pending):
            st = await c.ingestion.GetDocumentStatus(
                ingestion_pb2.GetDocumentStatusRequest(document_id=doc_id), metadata=md)
            states[doc_id] = MessageToDict(st, preserving_proto_field_name=True)
            if st.state == ingestion_pb2.DOCUMENT_STATE_INDEXED:
                pending.discard(doc_id)
        if pending:
            await asyncio.sleep(0.2)
    return {"indexed": not pending, "pending": sorted(pending), "documents": states}


async def cmd_ingest(args: argparse.Namespace) -> int:
    files = files_to_ingest(args.paths)
    if not files:
        print("nothing to ingest (supported: .txt .md .markdown .html .htm)", file=sys.stderr)
        return 2
    md = metadata(api_key_for(args.tenant, args.api_key))
    c = _clients()
    try:
        results: list[dict[str, Any]] = []
        for i in range(0, len(files), 64):
            req = ingestion_pb2.SubmitDocumentsRequest(
                documents=[document_for(f.path, f.document_id, f.source) for f in files[i:i + 64]])
            resp = await c.ingestion.SubmitDocuments(req, metadata=md, timeout=120)
            results.extend(MessageToDict(r, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
                           for r in resp.results)
        out: dict[str, Any] = {"tenant": args.tenant, "submitted": results}
        if args.wait:
            out["wait"] = await _wait_indexed(c, md, [r["document_id"] for r in results],
                                              args.timeout)
    finally:
        await c.close()
    lines = [f"{r['document_id']}: v{r['version']} {r['chunk_count']} chunks"
             + (" (unchanged)" if r["unchanged"] else "") for r in results]
    if args.wait:
        lines.append("all indexed" if out["wait"]["indexed"]
                     else f"not indexed yet: {', '.join(out['wait']['pending'])}")
    _emit(args, out, "\n".join(lines))
    return 0 if not args.wait or out["wait"]["indexed"] else 1


async def cmd_search(args: argparse.Namespace) -> int:
    md = metadata(api_key_for(args.tenant, args.api_key))
    c = _clients()
    try:
        req = vectorstore_pb2.SearchRequest(query=args.text, top_k=args.k,
                                            mode=SEARCH_MODES[args.mode])
        for f in args.filter or []:
            key, _, value = f.partition("=")
            req.filters.add(key=key, equals=value)
        resp = await c.vector_store.Search(req, metadata=md, timeout=30)
    finally:
        await c.close()
    hits = [MessageToDict(h, preserving_proto_field_name=True) for h in resp.hits]
    lines = [f"{i + 1}. [{h.score:.3f}] {h.document_id}#{h.chunk_index}: "
             f"{' '.join(h.text.split())[:160]}" for i, h in enumerate(resp.hits)]
    _emit(args, {"query": args.text, "mode": args.mode, "hits": hits},
          "\n".join(lines) or "no results")
    return 0


async def cmd_safety_check(args: argparse.Namespace) -> int:
    md = metadata(api_key_for(args.tenant, args.api_key))
    direction = {"input": safety_pb2.DIRECTION_INPUT, "output": safety_pb2.DIRECTION_OUTPUT}
    async with grpc.aio.insecure_channel(
            os.environ.get("LLMOPS_SAFETY_ADDR", ports.service_address("safety"))) as ch:
        resp = await safety_pb2_grpc.SafetyServiceStub(ch).CheckText(
            safety_pb2.CheckTextRequest(text=args.text, direction=direction[args.direction]),
            metadata=md, timeout=30)
    data = MessageToDict(resp, preserving_proto_field_name=True)
    verdict = safety_pb2.Verdict.Name(resp.verdict).removeprefix("VERDICT_").lower()
    lines = [f"verdict: {verdict} (toxicity backend: {resp.toxicity_backend})"]
    lines += [f"  {f.category} [{f.start}:{f.end}] score {f.score:.2f}" for f in resp.findings]
    if resp.redacted_text != args.text:
        lines.append(f"redacted: {resp.redacted_text}")
    _emit(args, data, "\n".join(lines))
    return 0


def _outcome(value: int) -> str:
    return inference_pb2.SafetyOutcome.Name(value).removeprefix("SAFETY_OUTCOME_").lower()  # type: ignore[arg-type]


async def cmd_ask(args: argparse.Namespace) -> int:
    md = metadata(api_key_for(args.tenant, args.api_key))
    req = inference_pb2.GenerateRequest(question=args.text, model_alias=args.model,
                                        rag=not args.no_rag, top_k=args.k,
                                        max_new_tokens=args.max_new_tokens, no_cache=args.no_cache,
                                        session_id=args.session)
    if args.prompt:
        req.prompt_name, _, label = args.prompt.partition("@")
        req.prompt_label = label
    async with grpc.aio.insecure_channel(
            os.environ.get("LLMOPS_INFERENCE_ADDR", ports.service_address("inference"))) as ch:
        stub = inference_pb2_grpc.InferenceServiceStub(ch)
        if args.stream:
            resp = inference_pb2.GenerateResponse()
            async for item in stub.GenerateStream(req, metadata=md, timeout=args.timeout):
                if item.HasField("final"):
                    resp = item.final
                elif not args.json:
                    print(item.token, end="", flush=True)
            if not args.json:
                print()
        else:
            resp = await stub.Generate(req, metadata=md, timeout=args.timeout)
    lines = [] if args.stream else [resp.answer]
    lines.append("")
    lines += [f"[{c.marker}] {c.document_id}" + (f" ({c.title})" if c.title else "")
              + f"  chunk {c.chunk_id[:8]}, score {c.score:.3f}" for c in resp.citations]
    stages = {s.stage: s.milliseconds for s in resp.stages}
    if resp.blocked:
        where = "input" if resp.input_safety == inference_pb2.SAFETY_OUTCOME_BLOCK else "output"
        lines.append(f"blocked by the {where} safety check, {stages.get('total', 0):.0f} ms")
    else:
        safety = (f"input {_outcome(resp.input_safety)}, output {_outcome(resp.output_safety)}")
        lines.append(f"model {resp.model_version}, prompt {resp.prompt_version}, "
                     f"{resp.completion_tokens} tokens, {stages.get('total', 0):.0f} ms, {safety}"
                     + (", cached" if resp.cached else ""))
    lines.append(f"request {resp.request_id} (rate it: llmops feedback {resp.request_id} "
                 "--rating up|down)")
    _emit(args, MessageToDict(resp, preserving_proto_field_name=True), "\n".join(lines))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmops", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    tenant = argparse.ArgumentParser(add_help=False)
    tenant.add_argument("--tenant", default=os.environ.get("LLMOPS_TENANT", "default"))
    tenant.add_argument("--api-key", default=None)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="start infrastructure and services")
    up.add_argument("--timeout", type=float, default=180)
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", parents=[common], help="stop services and infrastructure")
    down.add_argument("--services-only", action="store_true")
    down.set_defaults(func=cmd_down)
    sub.add_parser("status", parents=[common], help="health of everything").set_defaults(
        func=cmd_status)
    ing = sub.add_parser("ingest", parents=[common, tenant], help="ingest files or folders")
    ing.add_argument("paths", nargs="+")
    ing.add_argument("--wait", action="store_true", help="wait until searchable")
    ing.add_argument("--timeout", type=float, default=300)
    ing.set_defaults(func=cmd_ingest)
    se = sub.add_parser("search", parents=[common, tenant], help="search the knowledge base")
    se.add_argument("text")
    se.add_argument("--k", type=int, default=5)
    se.add_argument("--mode", choices=sorted(SEARCH_MODES), default="hybrid")
    se.add_argument("--filter", action="append", help="key=value (metadata, document_id, ...)")
    se.set_defaults(func=cmd_search)
    safety = sub.add_parser("safety", help="safety checks").add_subparsers(dest="safety_cmd",
                                                                           required=True)
    check = safety.add_parser("check", parents=[common, tenant],
                              help="check a text for PII, toxicity and prompt injection")
    check.add_argument("text")
    check.add_argument("--direction", choices=["input", "output"], default="input")
    check.set_defaults(func=cmd_safety_check)
    ask = sub.add_parser("ask", parents=[common, tenant], help="a grounded answer with citations")
    ask.add_argument("text")
    ask.add_argument("--model", default="production", help="registry alias")
    ask.add_argument("--k", type=int, default=4)
    ask.add_argument("--no-rag", action="store_true")
    ask.add_argument("--max-new-tokens", type=int, default=128)
    ask.add_argument("--timeout", type=float, default=120)
    ask.add_argument("--stream", action="store_true", help="print checked text as it arrives")
    ask.add_argument("--no-cache", action="store_true", help="skip the answer cache")
    ask.add_argument("--prompt", default="", help="registry prompt as NAME or NAME@LABEL "
                                                  "(default rag-answer@production)")
    ask.add_argument("--session", default="", metavar="ID",
                     help="a session id: while a canary runs, every ask of one session is "
                          "answered by the same model version")
    ask.set_defaults(func=cmd_ask)
    feedback_cmds.add_commands(sub, [common, tenant])
    datasets_cmds.add_commands(sub, [common, tenant])
    registry_cmds.add_commands(sub, [common, tenant])
    eval_cmds.add_commands(sub, [common, tenant])  # after registry_cmds: adds `models promote`
    rollout_cmds.add_commands(sub, [common, tenant])
    train_cmds.add_commands(sub, [common, tenant])
    report_cmd.add_commands(sub, [common, tenant])
    admin_cmds.add_commands(sub, common)
    embeddings_cmds.add_commands(sub, common)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = asyncio.run(args.func(args))
    except grpc.aio.AioRpcError as exc:
        err = {"error": exc.code().name, "details": exc.details()}
        print(json.dumps(err) if getattr(args, "json", False)
              else f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        code = 1
    sys.exit(code)
