"""`llmops embeddings status` and `llmops embeddings switch MODEL [--wait]` (vector-store).

A switch re-embeds every tenant's chunks with MODEL into a new collection in the background;
searches keep using the active collection until the copy is complete, then move to the new
one. Needs a platform admin key (--api-key, LLMOPS_ADMIN_KEY, or the development admin key).
The embedding service must serve MODEL (LLMOPS_EMBEDDING_EXTRA_MODELS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_cli.client import admin_key, metadata
from llmops_kit import ports


def _address() -> str:
    return os.environ.get("LLMOPS_VECTORSTORE_ADDR", ports.service_address("vector-store"))


def describe(status: vectorstore_pb2.EmbeddingStatus) -> str:
    a = status.active
    lines = [f"active: {a.model} ({a.dimensions} dims, collection {a.collection}, "
             f"tokenization {a.tokenization})"]
    if status.HasField("target"):
        t = status.target
        lines.append(f"{status.phase}: {t.model} ({t.dimensions} dims, collection "
                     f"{t.collection}, tokenization {t.tokenization}): "
                     f"{status.tenants_done}/{status.tenants_total} tenants, "
                     f"{status.chunks_copied} chunks re-embedded")
    if status.error:
        lines.append(f"error: {status.error} (run the switch again to resume)")
    if status.previous_model and not status.HasField("target"):
        lines.append(f"previous: {status.previous_model}")
    return "\n".join(lines)


def _emit(args: argparse.Namespace, status: vectorstore_pb2.EmbeddingStatus) -> None:
    data: dict[str, Any] = MessageToDict(status, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    print(json.dumps(data, indent=2) if args.json else describe(status))


async def cmd_status(args: argparse.Namespace) -> int:
    async with grpc.aio.insecure_channel(_address()) as channel:
        status = await vectorstore_pb2_grpc.VectorStoreServiceStub(channel).GetEmbeddingStatus(
            vectorstore_pb2.GetEmbeddingStatusRequest(),
            metadata=metadata(admin_key(args.api_key)), timeout=args.timeout)
    _emit(args, status)
    return 0


async def cmd_switch(args: argparse.Namespace) -> int:
    md = metadata(admin_key(args.api_key))
    async with grpc.aio.insecure_channel(_address()) as channel:
        stub = vectorstore_pb2_grpc.VectorStoreServiceStub(channel)
        status = await stub.SwitchEmbeddingModel(
            vectorstore_pb2.SwitchEmbeddingModelRequest(model=args.model), metadata=md,
            timeout=args.timeout)
        deadline = time.monotonic() + args.wait_timeout
        while args.wait and status.phase == "building" and time.monotonic() < deadline:
            await asyncio.sleep(args.poll)
            status = await stub.GetEmbeddingStatus(
                vectorstore_pb2.GetEmbeddingStatusRequest(), metadata=md, timeout=args.timeout)
    _emit(args, status)
    if status.phase == "failed":
        return 1
    return 0 if not args.wait or status.phase == "idle" else 1


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    """Adds `embeddings status|switch`; common: the shared --json option."""
    emb = sub.add_parser("embeddings", help="the embedding model searches use").add_subparsers(
        dest="embeddings_cmd", required=True)
    st = emb.add_parser("status", parents=[common], help="active model and re-embed progress")
    sw = emb.add_parser("switch", parents=[common],
                        help="re-embed every tenant's chunks with MODEL, then search with it")
    sw.add_argument("model", help='a model the embedding service serves, e.g. "muse"')
    sw.add_argument("--wait", action="store_true", help="wait until searches use MODEL")
    sw.add_argument("--wait-timeout", type=float, default=3600)
    sw.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    for p in (st, sw):
        p.add_argument("--api-key", default=None, help="a platform admin key")
        p.add_argument("--timeout", type=float, default=30)
    st.set_defaults(func=cmd_status)
    sw.set_defaults(func=cmd_switch)
