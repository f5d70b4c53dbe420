"""`llmops datasets create|list|show`: dataset versions in the trainer service.

    llmops datasets create FILE.jsonl --name N [--kind instruction|chat|text|eval] [--skip-invalid]
    llmops datasets create --from-documents DOC_ID [DOC_ID ...] --name N
    llmops datasets list [--kind K]
    llmops datasets show ID

A version belongs to the caller's tenant and is named by its content: creating the same file
again prints the existing version ("exists"). A file with invalid lines is refused with the
first errors (line and field) unless --skip-invalid is given.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, cast

import grpc
from google.protobuf.json_format import MessageToDict

from llmops.trainer.v1 import datasets_pb2, datasets_pb2_grpc
from llmops_cli.client import api_key_for, metadata
from llmops_kit import ports

KINDS = {"auto": datasets_pb2.DATASET_KIND_UNSPECIFIED,
         "instruction": datasets_pb2.DATASET_KIND_INSTRUCTION,
         "chat": datasets_pb2.DATASET_KIND_CHAT, "text": datasets_pb2.DATASET_KIND_TEXT,
         "eval": datasets_pb2.DATASET_KIND_EVAL}
KIND_NAMES = {v: k for k, v in KINDS.items()}
# The platform's gRPC message limit (llmops_kit.grpc_server); the service's own upload limit
# (LLMOPS_DATASETS_MAX_UPLOAD_BYTES, 32 MiB by default) may be lower.
MAX_MESSAGE = 64 * 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE),
                   ("grpc.max_receive_message_length", MAX_MESSAGE)]


def trainer_address() -> str:
    """LLMOPS_TRAINER_ADDR, else the local trainer's port (LLMOPS_TRAINER_GRPC_PORT, 7068)."""
    if os.environ.get("LLMOPS_TRAINER_ADDR"):
        return os.environ["LLMOPS_TRAINER_ADDR"]
    port = os.environ.get("LLMOPS_TRAINER_GRPC_PORT") or ports.defaults().get(
        "LLMOPS_TRAINER_GRPC_PORT", "7068")
    return f"{ports.local_host()}:{port}"


def dataset_dict(ds: datasets_pb2.Dataset) -> dict[str, Any]:
    data: dict[str, Any] = MessageToDict(ds, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    data["kind"] = KIND_NAMES.get(ds.kind, "auto")
    data["manifest"] = json.loads(data.pop("manifest_json") or "{}")
    return data


def summary(ds: datasets_pb2.Dataset) -> str:
    c, t = ds.counts, ds.token_stats
    kind = KIND_NAMES.get(ds.kind, "?")
    split = (f"{c.records} records" if ds.kind == datasets_pb2.DATASET_KIND_EVAL
             else f"{c.train} train / {c.validation} validation")
    lines = [f"{ds.id}  {ds.name} ({kind}): {split}",
             f"  input lines {c.input_lines}, skipped {c.skipped}, duplicates removed: "
             f"{c.exact_duplicates} exact, {c.near_duplicates} near",
             f"  tokens: min {t.min}, mean {t.mean:.1f}, p50 {t.p50:.0f}, p95 {t.p95:.0f}, "
             f"max {t.max} (max_seq_len {t.max_seq_len}, over it: {t.over_length})",
             f"  {ds.uri}"]
    lines += [f"  skipped line {p.line}" + (f", field {p.field}" if p.field else "")
              + f": {p.reason}: {p.message}" for p in ds.skipped]
    return "\n".join(lines)


def _stub(channel: grpc.aio.Channel) -> datasets_pb2_grpc.DatasetServiceAsyncStub:
    return cast("datasets_pb2_grpc.DatasetServiceAsyncStub",
                datasets_pb2_grpc.DatasetServiceStub(channel))


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else text)


def create_request(args: argparse.Namespace) -> datasets_pb2.CreateDatasetRequest:
    options = datasets_pb2.BuildOptions(skip_invalid=args.skip_invalid,
                                        disable_near_dedupe=args.no_near_dedupe)
    for field, value in (("max_seq_len", args.max_seq_len), ("seed", args.seed),
                         ("validation_fraction", args.validation_fraction),
                         ("near_duplicate_threshold", args.near_threshold)):
        if value is not None:
            setattr(options, field, value)
    req = datasets_pb2.CreateDatasetRequest(name=args.name, kind=KINDS[args.kind], options=options)
    if args.from_documents:
        if args.file:
            raise SystemExit("give a FILE or --from-documents, not both")
        req.from_documents.document_ids.extend(args.from_documents)
    elif args.file:
        path = Path(args.file)
        if not path.is_file():
            raise SystemExit(f"no such file: {path}")
        if path.stat().st_size > MAX_MESSAGE - 1024 * 1024:
            raise SystemExit(f"{path} is {path.stat().st_size / 2**20:.0f} MiB; an upload can be "
                             f"at most {MAX_MESSAGE // 2**20 - 1} MiB: split the file")
        req.jsonl = path.read_bytes()
    else:
        raise SystemExit("give a FILE (JSONL) or --from-documents DOC_ID ...")
    return req


async def cmd_create(args: argparse.Namespace) -> int:
    req = create_request(args)
    async with grpc.aio.insecure_channel(trainer_address(), options=CHANNEL_OPTIONS) as ch:
        resp = await _stub(ch).CreateDataset(req, metadata=metadata(
            api_key_for(args.tenant, args.api_key)), timeout=args.timeout)
    data = {"created": resp.created, "dataset": dataset_dict(resp.dataset)}
    _emit(args, data, ("created " if resp.created else "exists (same content): ")
          + summary(resp.dataset))
    return 0


async def cmd_list(args: argparse.Namespace) -> int:
    async with grpc.aio.insecure_channel(trainer_address(), options=CHANNEL_OPTIONS) as ch:
        resp = await _stub(ch).ListDatasets(
            datasets_pb2.ListDatasetsRequest(kind=KINDS[args.kind], limit=args.limit),
            metadata=metadata(api_key_for(args.tenant, args.api_key)), timeout=args.timeout)
    rows = [f"{d.id}  {d.created_at.ToDatetime():%Y-%m-%d %H:%M}  {KIND_NAMES.get(d.kind, '?'):<11} "
            f"{d.counts.train + d.counts.records:>6} train {d.counts.validation:>5} val  {d.name}"
            for d in resp.datasets]
    _emit(args, {"datasets": [dataset_dict(d) for d in resp.datasets]},
          "\n".join(rows) or "no datasets")
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    async with grpc.aio.insecure_channel(trainer_address(), options=CHANNEL_OPTIONS) as ch:
        ds = await _stub(ch).GetDataset(datasets_pb2.GetDatasetRequest(id=args.id), metadata=metadata(
            api_key_for(args.tenant, args.api_key)), timeout=args.timeout)
    _emit(args, dataset_dict(ds), summary(ds))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 parents: list[argparse.ArgumentParser]) -> None:
    """Adds `datasets`; parents: the shared --json/--tenant options."""
    ds = sub.add_parser("datasets", help="dataset versions for fine-tuning and evaluation")
    cmds = ds.add_subparsers(dest="datasets_cmd", required=True)
    create = cmds.add_parser("create", parents=parents, help="a version from a JSONL file or documents")
    create.add_argument("file", nargs="?", help="JSONL: instruction/response pairs, chat "
                        "messages, {text} lines or eval questions")
    create.add_argument("--name", required=True)
    create.add_argument("--kind", choices=list(KINDS), default="auto",
                        help="default: detected from the first line")
    create.add_argument("--from-documents", nargs="+", metavar="DOC_ID",
                        help="the tenant's ingested documents, as plain text (kind text)")
    create.add_argument("--skip-invalid", action="store_true",
                        help="leave invalid lines out (listed) instead of refusing the file")
    create.add_argument("--max-seq-len", type=int)
    create.add_argument("--validation-fraction", type=float)
    create.add_argument("--seed", type=int)
    create.add_argument("--near-threshold", type=float, help="near-duplicate Jaccard threshold")
    create.add_argument("--no-near-dedupe", action="store_true")
    create.add_argument("--timeout", type=float, default=300)
    create.set_defaults(func=cmd_create)
    ls = cmds.add_parser("list", parents=parents, help="the tenant's versions, newest first")
    ls.add_argument("--kind", choices=list(KINDS), default="auto", help="default: every kind")
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--timeout", type=float, default=30)
    ls.set_defaults(func=cmd_list)
    show = cmds.add_parser("show", parents=parents, help="one version with its manifest")
    show.add_argument("id")
    show.add_argument("--timeout", type=float, default=30)
    show.set_defaults(func=cmd_show)
