"""Answer quality on the evaluation set (samples/eval/questions.jsonl), per language.

The benchmark makes a tenant of its own (AdminService, with the admin key; dev mode:
dev-admin-key), ingests samples/corpus for it through the real document path, then asks every
question of the set through the real answer path (the inference service's Generate, answer
cache off, greedy) and prints, for English, Korean and all:

- recall@5 and MRR: the answering document among the first 5 passages the vector-store's
  Search returns for the question (hybrid, as the answer path searches);
- cited: the answer cites the answering document (GenerateResponse.citations);
- holds fact: the answer holds one of the fact's variants (bench/eval_set.py: normalised,
  case-insensitive; a refusal holds nothing);
- refused (not covered): share of the unanswerable questions answered with the platform's
  "the documents do not cover this" (GenerateResponse.refusal set); target >= 0.8;
- refused (covered): false refusals of the answerable ones.

Rows "en tune" / "en held-out" (and Korean) split the set in halves (bench/eval_set.py `half`:
odd-numbered questions are the tuning half, even-numbered the held-out one): answer settings
are chosen on the tuning half, the held-out half shows whether they carry over.

--retrieval-only skips generation (seconds instead of minutes): only recall@5 and MRR, and
the weak-retrieval refusal by cosine threshold. --max-new-tokens 1 runs the whole answer path
with the shortest generation: the refusal columns are exact (refusals are decided before
generation unless a policy sets min_groundedness), the answer columns meaningless.
--lang, --ids and --answerable-only ask a subset.
--set chooses the question file: `tuned` (questions.jsonl, the set the answer rules were chosen
on), `held-out` (held-out.jsonl, questions never used to choose anything: the honest figure) or
`all` (both, the default), with a table per file.
The tenant is deleted at the end (--keep-tenant keeps it, --tenant/--api-key reuse one).

    uv run python bench/answer_quality.py [--retrieval-only] [--json] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import grpc
from bench_common import ensure_stack
from eval_set import (
    CORPUS,
    HELD_OUT,
    QUESTIONS,
    EvalQuestion,
    Outcome,
    Scores,
    by_language,
    half,
    load,
)

from llmops.admin.v1 import admin_pb2, admin_pb2_grpc
from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_kit import ports

Metadata = tuple[tuple[str, str], ...]


async def make_tenant(admin_key: str) -> tuple[str, str]:
    """A fresh tenant and a maintainer key for it."""
    tenant = f"eval{secrets.token_hex(3)}"
    md = (("x-api-key", admin_key),)
    async with grpc.aio.insecure_channel(ports.service_address("model-registry")) as ch:
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        await admin.CreateTenant(admin_pb2.CreateTenantRequest(
            tenant_id=tenant, display_name="answer quality benchmark"), metadata=md, timeout=10)
        created = await admin.CreateKey(admin_pb2.CreateKeyRequest(
            tenant_id=tenant, role=admin_pb2.ROLE_MAINTAINER, description="answer_quality.py"),
            metadata=md, timeout=10)
    return tenant, created.secret


async def key_accepted(api_key: str, within_s: float = 30.0) -> None:
    """Waits until ingestion accepts a new key: every service reloads keys from the shared store
    every second or so, and a call made at once can be refused (INVALID_API_KEY)."""
    md = (("x-api-key", api_key),)
    deadline = time.monotonic() + within_s
    async with grpc.aio.insecure_channel(ports.service_address("ingestion")) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        while True:
            try:
                await stub.GetDocumentStatus(ingestion_pb2.GetDocumentStatusRequest(
                    document_id="key-probe"), metadata=md, timeout=10)
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                    return  # authenticated: NOT_FOUND for the probe document
                if time.monotonic() > deadline:
                    raise SystemExit(f"the new key was not accepted within {within_s:g} s") from exc
            await asyncio.sleep(0.2)


async def delete_tenant(admin_key: str, tenant: str) -> None:
    async with grpc.aio.insecure_channel(ports.service_address("model-registry")) as ch:
        await admin_pb2_grpc.AdminServiceStub(ch).DeleteTenant(
            admin_pb2.DeleteTenantRequest(tenant_id=tenant),
            metadata=(("x-api-key", admin_key),), timeout=10)


async def ingest(tenant: str, api_key: str) -> None:
    """`llmops ingest samples/corpus --wait` for the benchmark's tenant."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from llmops_cli.main import main; main()", "ingest", str(CORPUS),
         "--tenant", tenant, "--api-key", api_key, "--wait", "--timeout", "300"],
        capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"ingesting the corpus failed:\n{done.stdout}\n{done.stderr}")


async def retrieved(md: Metadata, questions: Sequence[EvalQuestion], k: int
                    ) -> dict[str, tuple[list[str], float | None]]:
    """Document ids of the first k hits of each question, as the answer path searches, and
    the best hit's cosine to the question (what the weak-retrieval refusal compares)."""
    out: dict[str, tuple[list[str], float | None]] = {}
    async with grpc.aio.insecure_channel(ports.service_address("vector-store")) as ch:
        store = vectorstore_pb2_grpc.VectorStoreServiceStub(ch)
        for q in questions:
            resp = await store.Search(vectorstore_pb2.SearchRequest(
                query=q.question, top_k=k, mode=vectorstore_pb2.SEARCH_MODE_HYBRID),
                metadata=md, timeout=30)
            known = [h.similarity for h in resp.hits if h.HasField("similarity")]
            out[q.id] = ([h.document_id for h in resp.hits], max(known) if known else None)
    return out


async def answered(md: Metadata, questions: Sequence[EvalQuestion], top_k: int,
                   max_new_tokens: int, errors: dict[str, str] | None = None
                   ) -> dict[str, tuple[inference_pb2.GenerateResponse, float]]:
    """Every question's answer; a question whose Generate fails (the generation backend timing
    out on a loaded machine) gets an empty answer, which holds and cites nothing, and its
    error's reason in `errors`, instead of ending the run."""
    out: dict[str, tuple[inference_pb2.GenerateResponse, float]] = {}
    async with grpc.aio.insecure_channel(ports.service_address("inference")) as ch:
        stub = inference_pb2_grpc.InferenceServiceStub(ch)
        for q in questions:
            t0 = time.perf_counter()
            try:
                resp = await stub.Generate(inference_pb2.GenerateRequest(
                    question=q.question, top_k=top_k, max_new_tokens=max_new_tokens,
                    no_cache=True), metadata=md, timeout=600)
            except grpc.aio.AioRpcError as exc:
                if errors is None:
                    raise
                errors[q.id] = f"{exc.code().name}: {(exc.details() or '')[:80]}"
                resp = inference_pb2.GenerateResponse()
            out[q.id] = (resp, (time.perf_counter() - t0) * 1000)
    return out


THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def threshold_sweep(questions: Sequence[EvalQuestion], best: dict[str, float | None]
                    ) -> list[dict[str, Any]]:
    """For each min_retrieval_score: the share of questions the weak-retrieval check refuses
    before generating, of the unanswerable (should be high) and of the answerable (low)."""
    rows = []
    for t in THRESHOLDS:
        row: dict[str, Any] = {"min_retrieval_score": t}
        for lang in ("en", "ko", "all"):
            qs = [q for q in questions if lang in ("all", q.lang)]
            for kind, want in (("not_covered", False), ("covered", True)):
                group = [q for q in qs if q.answerable is want]
                refused = sum(1 for q in group if (best[q.id] or 0.0) < t)
                row[f"refused_{kind}_{lang}"] = refused / len(group) if group else None
        rows.append(row)
    return rows


def sweep_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["min_retrieval_score | refused(not covered) en ko all | refused(covered) en ko all"]
    for r in rows:
        lines.append(f"{r['min_retrieval_score']:.2f} | " + " ".join(
            _fmt(r[f"refused_not_covered_{k}"]) for k in ("en", "ko", "all")) + " | " + " ".join(
            _fmt(r[f"refused_covered_{k}"]) for k in ("en", "ko", "all")))
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "   -" if v is None else f"{v:4.2f}"


def table(scores: dict[str, Scores]) -> str:
    cols = ("recall_at_5", "mrr", "cited_right_document", "holds_fact",
            "refused_when_not_covered", "refused_when_covered")
    head = ("lang", "questions", "recall@5", "MRR", "cited", "holds fact", "refused(not covered)",
            "refused(covered)")
    lines = [" | ".join(head)]
    for lang, s in scores.items():
        lines.append(" | ".join([lang, f"{s.answerable}+{s.unanswerable}"]
                                + [_fmt(getattr(s, c)) for c in cols]))
    return "\n".join(lines)


SETS = {"tuned": QUESTIONS, "held-out": HELD_OUT}


def question_sets(chosen: str) -> dict[str, list[EvalQuestion]]:
    return {name: load(path) for name, path in SETS.items() if chosen in ("all", name)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sets = question_sets(args.set)
    set_of = {q.id: name for name, qs in sets.items() for q in qs}
    questions = [q for qs in sets.values() for q in qs
                 if (not args.lang or q.lang == args.lang)
                 and (not args.ids or q.id in args.ids.split(","))
                 and (not args.half or (set_of[q.id] == "tuned" and half(q) == args.half))
                 and not (args.answerable_only and not q.answerable)]
    admin_key = args.admin_key or os.environ.get("LLMOPS_ADMIN_KEY") or "dev-admin-key"
    if not args.no_stack:
        await ensure_stack()
    tenant, api_key = ((args.tenant, args.api_key) if args.tenant
                       else await make_tenant(admin_key))
    md: Metadata = (("x-api-key", api_key),)
    try:
        await key_accepted(api_key)
        t0 = time.perf_counter()
        if not args.no_ingest:
            await ingest(tenant, api_key)
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        hits = await retrieved(md, questions, 5)
        search_s = time.perf_counter() - t0
        responses: dict[str, tuple[inference_pb2.GenerateResponse, float]] = {}
        errors: dict[str, str] = {}
        if not args.retrieval_only:
            responses = await answered(md, questions, args.top_k, args.max_new_tokens, errors)
    finally:
        if not args.tenant and not args.keep_tenant:
            try:
                await delete_tenant(admin_key, tenant)
            except grpc.aio.AioRpcError as exc:  # the answers are measured: print them anyway
                print(f"could not delete tenant {tenant} ({exc.code().name}); delete it with "
                      f"`llmops tenants delete {tenant}`", file=sys.stderr)
    outcomes: list[Outcome] = []
    rows: list[dict[str, Any]] = []
    for q in questions:
        got = responses.get(q.id)
        resp = got[0] if got else None
        refusal = getattr(resp, "refusal", "") if resp is not None else ""
        docs, best = hits[q.id]
        o = Outcome(q, docs, generated=resp is not None)
        if resp is not None:
            o.cited = [c.document_id for c in resp.citations]
            o.answer = resp.answer
            o.refused = bool(refusal)
        outcomes.append(o)
        rows.append({"id": q.id, "set": set_of[q.id], "half": half(q), "retrieved": docs, "answer": o.answer,
                     "finish_reason": getattr(resp, "finish_reason", "") if resp else "",
                     "cited": list(o.cited), "refusal": refusal, "retrieval_score": best,
                     "ms": round(got[1], 1) if got else None, "error": errors.get(q.id, "")})
    # The halves split the tuned set only: the held-out file is held out as a whole.
    scores = by_language(outcomes, halves=args.set == "tuned")
    per_set = {name: by_language([o for o in outcomes if set_of[o.question.id] == name],
                                 halves=name == "tuned")
               for name in sets}
    sweep = threshold_sweep(questions, {q.id: hits[q.id][1] for q in questions})
    return {"tenant": tenant, "retrieval_only": args.retrieval_only, "top_k": args.top_k,
            "weak_retrieval_sweep": sweep, "max_new_tokens": args.max_new_tokens,
            "errors": errors,
            "ingest_s": round(ingest_s, 1),
            "search_s": round(search_s, 2),
            "scores": {k: asdict(v) for k, v in scores.items()}, "questions": rows,
            "table": table(scores),
            "sets": {name: {"scores": {k: asdict(v) for k, v in s.items()}, "table": table(s)}
                     for name, s in per_set.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--retrieval-only", action="store_true",
                    help="recall@5 and MRR only, without generation (fast)")
    ap.add_argument("--top-k", type=int, default=4, help="passages for the answer's prompt")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--tenant", help="reuse this tenant (with --api-key) instead of a new one")
    ap.add_argument("--api-key")
    ap.add_argument("--admin-key", help="for the tenant and key (default: LLMOPS_ADMIN_KEY, "
                                        "else the development mode's)")
    ap.add_argument("--keep-tenant", action="store_true")
    ap.add_argument("--no-ingest", action="store_true", help="the tenant already holds the corpus")
    ap.add_argument("--no-stack", action="store_true", help="do not start the local stack")
    ap.add_argument("--lang", choices=("en", "ko"), help="only this language's questions")
    ap.add_argument("--ids", help="only these questions (comma-separated ids)")
    ap.add_argument("--answerable-only", action="store_true")
    ap.add_argument("--set", choices=("all", "tuned", "held-out"), default="all",
                    help="which question file: samples/eval/questions.jsonl (tuned), "
                         "held-out.jsonl, or both (a table for each)")
    ap.add_argument("--half", choices=("tune", "held-out"),
                    help="only this half of the set (tune: odd numbers, held-out: even); "
                         "the table always shows both halves of what was asked")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="every question's outcome")
    args = ap.parse_args()
    if args.tenant and not args.api_key:
        ap.error("--tenant needs --api-key")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    what = "retrieval only" if args.retrieval_only else (
        f"answers: top_k={args.top_k}, max_new_tokens={args.max_new_tokens}, greedy, no cache")
    print(f"{len(result['questions'])} questions, {what}; ingest {result['ingest_s']} s, "
          f"{len(result['questions'])} searches {result['search_s']} s")
    if len(result["sets"]) > 1:
        for name, got in result["sets"].items():
            print(f"{name} ({SETS[name].name}):")
            print(got["table"])
        print("all:")
    print(result["table"])
    if result["errors"]:
        print(f"{len(result['errors'])} questions failed (counted as neither citing nor holding "
              f"the fact): " + ", ".join(f"{k} {v}" for k, v in result["errors"].items()))
    if args.retrieval_only:
        print("weak-retrieval refusal by threshold (best hit's cosine to the question):")
        print(sweep_table(result["weak_retrieval_sweep"]))
    for lang in ("en", "ko"):
        misses = result["scores"][lang]["misses"]
        if misses:
            print(f"{lang}: answering document not in the top 5: {', '.join(misses)}")
    if args.verbose:
        for row in result["questions"]:
            print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
