"""`llmops feedback REQUEST_ID --rating up|down [--comment TEXT]`: rate an answer.

REQUEST_ID is what `llmops ask` prints (GenerateResponse.request_id). The comment is
PII-redacted by the platform before it is kept; the reply says whether it was.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops_cli.client import api_key_for, metadata
from llmops_kit import ports

RATINGS = {"up": 1, "down": -1}


async def cmd_feedback(args: argparse.Namespace) -> int:
    md = metadata(api_key_for(args.tenant, args.api_key))
    req = inference_pb2.SubmitFeedbackRequest(request_id=args.request_id,
                                              rating=RATINGS[args.rating], comment=args.comment)
    async with grpc.aio.insecure_channel(
            os.environ.get("LLMOPS_INFERENCE_ADDR", ports.service_address("inference"))) as ch:
        resp = await inference_pb2_grpc.InferenceServiceStub(ch).SubmitFeedback(
            req, metadata=md, timeout=args.timeout)
    data: dict[str, Any] = MessageToDict(resp, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    text = f"feedback {resp.feedback_id} recorded ({args.rating})"
    if resp.comment_redacted:
        text += "; personal data in the comment was redacted before it was kept"
    print(json.dumps(data, indent=2) if args.json else text)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 parents: list[argparse.ArgumentParser]) -> None:
    """Adds `feedback`; parents: the shared --json/--tenant options."""
    fb = sub.add_parser("feedback", parents=parents,
                        help="rate an answer by the request id `llmops ask` printed")
    fb.add_argument("request_id")
    fb.add_argument("--rating", choices=sorted(RATINGS), required=True)
    fb.add_argument("--comment", default="", help="at most 2,000 characters; PII is redacted")
    fb.add_argument("--timeout", type=float, default=30)
    fb.set_defaults(func=cmd_feedback)
