"""What a streaming client sees: time to first token, time to the final answer, and whether the
streamed text is the final answer, per inference service address.

Makes a tenant of its own (as bench/answer_quality.py does), ingests samples/corpus for it, then
asks each question of the evaluation set (or --ids) with GenerateStream on every --address in
turn (interleaved, so a loaded machine weighs on each alike), greedy, no cache. Per address it
prints the client-side TTFT and total (p50, max), the server's own stages, and how many streams
showed text that is not the final answer ("replaced"), and with --compare-unary how many
differ from the unary Generate answer to the same request (before the hybrid stream held the
model's text until its decision, a hybrid stream showed, and ended with, the model's text where
Generate answered with the extracted sentence; services/inference README).

    uv run python bench/answer_stream.py --address 127.0.0.1:7066 [--address OTHER] \
        [--ids en-a07,...] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

import grpc
from answer_quality import delete_tenant, ingest, make_tenant
from eval_set import HELD_OUT, QUESTIONS, load

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc

# The question of the report (issue 8), then a few of the set's.
EXTRA = "My laptop was stolen, who do I tell?"
DEFAULT_IDS = "en-a01,en-a07,en-a12,en-a16,ko-a06,en-ha05,ko-ha04"


async def one(address: str, md: tuple[tuple[str, str], ...], question: str,
              max_new_tokens: int, unary: bool) -> dict[str, Any]:
    req = inference_pb2.GenerateRequest(question=question, max_new_tokens=max_new_tokens,
                                        no_cache=True)
    async with grpc.aio.insecure_channel(address) as ch:
        stub = inference_pb2_grpc.InferenceServiceStub(ch)
        pieces: list[str] = []
        final = inference_pb2.GenerateResponse()
        first = 0.0
        t0 = time.perf_counter()
        async for item in stub.GenerateStream(req, metadata=md, timeout=600):
            if item.HasField("final"):
                final = item.final
            else:
                first = first or time.perf_counter() - t0
                pieces.append(item.token)
        total = time.perf_counter() - t0
        # The same request unary (greedy: the same generation): its answer is the decided one.
        answer = (await stub.Generate(req, metadata=md, timeout=600)).answer if unary else None
    shown = "".join(pieces)
    return {"unary": answer, "differs_from_unary": answer is not None and answer != shown,
            "address": address, "question": question, "ttft_s": round(first or total, 3),
            "total_s": round(total, 3), "shown": shown, "final": final.answer,
            "replaced": shown != final.answer, "finish_reason": final.finish_reason,
            "stages_ms": {s.stage: round(s.milliseconds) for s in final.stages}}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ttft = [r["ttft_s"] for r in rows]
    total = [r["total_s"] for r in rows]
    return {"streams": len(rows), "ttft_p50_s": round(statistics.median(ttft), 2),
            "ttft_max_s": max(ttft), "total_p50_s": round(statistics.median(total), 2),
            "total_max_s": max(total), "replaced": sum(r["replaced"] for r in rows),
            "extractive": sum(r["finish_reason"] == "extractive" for r in rows),
            "differs_from_unary": sum(r["differs_from_unary"] for r in rows)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ids = set(args.ids.split(","))
    questions = [EXTRA] + [q.question for q in load(QUESTIONS) + load(HELD_OUT) if q.id in ids]
    admin_key = args.admin_key or os.environ.get("LLMOPS_ADMIN_KEY") or "dev-admin-key"
    tenant, api_key = await make_tenant(admin_key)
    md = (("x-api-key", api_key),)
    rows: list[dict[str, Any]] = []
    try:
        await ingest(tenant, api_key)
        for question in questions:
            for address in args.address:
                rows.append(await one(address, md, question, args.max_new_tokens,
                                      args.compare_unary))
    finally:
        await delete_tenant(admin_key, tenant)
    return {"max_new_tokens": args.max_new_tokens, "questions": len(questions),
            "by_address": {a: summary([r for r in rows if r["address"] == a])
                           for a in args.address},
            "streams": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--address", action="append", required=True,
                    help="an inference service's gRPC address (repeat to compare)")
    ap.add_argument("--ids", default=DEFAULT_IDS, help="questions of the evaluation set")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--compare-unary", action="store_true",
                    help="also ask each question with Generate and count the streams whose "
                         "text differs from the unary answer")
    ap.add_argument("--admin-key")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    print(f"{result['questions']} questions, streamed, max_new_tokens={args.max_new_tokens}, "
          "greedy, no cache (client-side seconds)")
    print("address | streams | TTFT p50 | TTFT max | total p50 | total max | replaced | "
          "extractive | differs from unary")
    for address, s in result["by_address"].items():
        print(f"{address} | {s['streams']} | {s['ttft_p50_s']} | {s['ttft_max_s']} | "
              f"{s['total_p50_s']} | {s['total_max_s']} | {s['replaced']} | {s['extractive']} | "
              f"{s['differs_from_unary'] if args.compare_unary else '-'}")


if __name__ == "__main__":
    main()
