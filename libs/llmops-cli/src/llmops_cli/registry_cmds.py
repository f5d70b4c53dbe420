"""`llmops prompts` and `llmops models`: versions, aliases/labels and history in the registry.

Writes go to the caller's tenant by default (its own versions and aliases, a maintainer key);
`--shared` writes the platform-wide ones every tenant falls back to (an admin key).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC
from pathlib import Path
from typing import Any, cast

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from llmops.registry.v1 import registry_pb2, registry_pb2_grpc
from llmops_cli.client import api_key_for, metadata
from llmops_kit import ports

TIMEOUT = 30.0
Metadata = tuple[tuple[str, str], ...]


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else text)


def _md(args: argparse.Namespace) -> Metadata:
    return metadata(api_key_for(args.tenant, args.api_key))


@asynccontextmanager
async def _registry() -> AsyncIterator[registry_pb2_grpc.ModelRegistryServiceAsyncStub]:
    async with grpc.aio.insecure_channel(
            os.environ.get("LLMOPS_REGISTRY_ADDR", ports.service_address("model-registry"))) as ch:
        # The stub's overloads pick the async type for an aio channel; grpc itself is untyped.
        yield cast("registry_pb2_grpc.ModelRegistryServiceAsyncStub",
                   registry_pb2_grpc.ModelRegistryServiceStub(ch))


def _dict(msg: Message) -> dict[str, Any]:
    # Zero values stay in (from_version 0 = created, changed false): scripts get stable keys.
    return MessageToDict(msg, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


async def _all_pages(call: Callable[..., Awaitable[Any]], req: Any, field: str,
                     md: Metadata) -> list[Any]:
    """Every item of a paged List/History call (page_size 0: the server's default of 50)."""
    items: list[Any] = []
    while True:
        resp = await call(req, metadata=md, timeout=TIMEOUT)
        items.extend(getattr(resp, field))
        # A token equal to the one just sent would loop forever: treat it as the last page.
        if not resp.next_page_token or resp.next_page_token == req.page.page_token:
            return items
        req.page.page_token = resp.next_page_token


def _when(msg: Message, field: str) -> str:
    if not msg.HasField(field):
        return ""
    ts: Timestamp = getattr(msg, field)
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _created(msg: Message) -> str:
    """`created <time> by <tenant>`, or as much of it as the registry filled in."""
    at, by = _when(msg, "created_at"), getattr(msg, "created_by", "")
    return " ".join(p for p in ["created" if at or by else "", at, f"by {by}" if by else ""] if p)


def _v(version: int, none: str = "(none)") -> str:
    return f"v{version}" if version else none


def _scope(msg: Message) -> str:
    """` (tenant acme)` for what belongs to one tenant; nothing for what is shared."""
    tenant = getattr(msg, "tenant_id", "")
    return f" (tenant {tenant})" if tenant else ""


async def cmd_prompts(args: argparse.Namespace) -> int:
    md = _md(args)
    async with _registry() as stub:
        if args.prompts_cmd == "list":
            lst = await stub.ListPrompts(registry_pb2.ListPromptsRequest(), metadata=md)
            data = MessageToDict(lst, preserving_proto_field_name=True)
            text = json.dumps(data, indent=2, ensure_ascii=False)
        elif args.prompts_cmd == "show":
            pv = await stub.GetPromptVersion(
                registry_pb2.GetPromptVersionRequest(name=args.name, label=args.label),
                metadata=md)
            data = MessageToDict(pv, preserving_proto_field_name=True)
            text = f"{pv.name} v{pv.version} labels={list(pv.labels)}\n{pv.template}"
        else:
            template = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8")
            pv = await stub.CreatePromptVersion(registry_pb2.CreatePromptVersionRequest(
                name=args.name, template=template,
                labels=args.set_label or [], shared=args.shared), metadata=md)
            data = MessageToDict(pv, preserving_proto_field_name=True)
            text = f"created {pv.name} v{pv.version} labels={list(pv.labels)}{_scope(pv)}"
    _emit(args, data, text)
    return 0


def _version_line(mv: registry_pb2.ModelVersion) -> str:
    parts = [f"v{mv.version}", mv.format, mv.artifact_uri]
    if mv.aliases:
        parts.append(f"[{', '.join(sorted(mv.aliases))}]")
    if created := _created(mv):
        parts.append(created)
    return "  ".join(p for p in parts if p)


async def cmd_models_list(args: argparse.Namespace) -> int:
    md = _md(args)
    async with _registry() as stub:
        if args.name:
            versions = await _all_pages(
                stub.ListModelVersions, registry_pb2.ListModelVersionsRequest(name=args.name),
                "versions", md)
            data: dict[str, Any] = {"name": args.name, "versions": [_dict(v) for v in versions]}
            text = "\n".join(_version_line(v) for v in versions) or f"{args.name}: no versions"
        else:
            models = await _all_pages(stub.ListModels, registry_pb2.ListModelsRequest(),
                                      "models", md)
            data = {"models": [_dict(m) for m in models]}
            lines = []
            for m in models:
                aliases = " ".join(f"{a}=v{v}" for a, v in sorted(m.aliases.items()))
                created = _created(m)
                lines.append(f"{m.name}  latest v{m.latest_version}"
                             + (f"  {aliases}" if aliases else "")
                             + (f"  {created}" if created else ""))
            text = "\n".join(lines) or "no models"
    _emit(args, data, text)
    return 0


async def cmd_models_show(args: argparse.Namespace) -> int:
    req = registry_pb2.GetModelVersionRequest(name=args.name)
    if args.version is not None:
        req.version = args.version
    else:
        req.alias = args.alias or "production"
    md = _md(args)
    async with _registry() as stub:
        mv = await stub.GetModelVersion(req, metadata=md, timeout=TIMEOUT)
    lines = [f"{mv.name} v{mv.version}"
             + (f"  [{', '.join(sorted(mv.aliases))}]" if mv.aliases else ""),
             f"format: {mv.format}", f"artifact: {mv.artifact_uri}"]
    if mv.base_model:
        lines.append(f"base model: {mv.base_model}")
    lines += [f"metadata: {k}={v}" for k, v in sorted(mv.metadata.items())]
    if mv.HasField("lineage"):
        lin = mv.lineage
        # An empty parent_name means the version's own model (see Lineage).
        parent = (lin.parent_name or mv.name) + (f"@v{lin.parent_version}"
                                                 if lin.parent_version else "")
        lines += [f"lineage: {label} {value}" for label, value in [
            ("parent", parent if lin.parent_name or lin.parent_version else ""),
            ("training job", lin.training_job_id), ("dataset", lin.dataset_uri)] if value]
    if created := _created(mv):
        lines.append(created)
    _emit(args, _dict(mv), "\n".join(lines))
    return 0


async def cmd_models_register(args: argparse.Namespace) -> int:
    req = registry_pb2.RegisterModelVersionRequest(
        name=args.name, artifact_uri=args.artifact, format=args.format,
        base_model=args.base_model, metadata=dict(args.meta or []), shared=args.shared)
    md = _md(args)
    async with _registry() as stub:
        mv = await stub.RegisterModelVersion(req, metadata=md, timeout=TIMEOUT)
    # A new version serves nothing until an alias points at it: say how.
    text = (f"registered {mv.name} v{mv.version} ({mv.format}) {mv.artifact_uri}{_scope(mv)}\n"
            f"promote with: llmops models alias {mv.name} production {mv.version}"
            + (" --shared" if args.shared else ""))
    _emit(args, _dict(mv), text)
    return 0


async def cmd_models_alias(args: argparse.Namespace) -> int:
    req = registry_pb2.SetAliasRequest(name=args.name, alias=args.alias, version=args.version,
                                       reason=args.reason, shared=args.shared)
    md = _md(args)
    async with _registry() as stub:
        resp = await stub.SetAlias(req, metadata=md, timeout=TIMEOUT)
    text = (f"{'shared ' if args.shared else ''}{args.alias}: {_v(resp.previous_version)} -> "
            f"{_v(resp.version)}" + ("" if resp.changed else " (unchanged)"))
    _emit(args, {"name": args.name, "alias": args.alias, "shared": args.shared,
                 **_dict(resp)}, text)
    return 0


async def cmd_models_history(args: argparse.Namespace) -> int:
    md = _md(args)
    async with _registry() as stub:
        changes = await _all_pages(
            stub.GetAliasHistory,
            registry_pb2.GetAliasHistoryRequest(name=args.name, alias=args.alias),
            "changes", md)
    lines = [" ".join(p for p in [
        f"#{c.sequence}", _when(c, "changed_at"),
        f"{c.alias}: {_v(c.from_version)} -> {_v(c.to_version, '(deleted)')}",
        f"by {c.actor}" if c.actor else "", f"({c.reason})" if c.reason else "",
        f"[tenant {c.tenant_id}]" if c.tenant_id else ""] if p)
        for c in changes]
    data = {"name": args.name, "alias": args.alias, "changes": [_dict(c) for c in changes]}
    _emit(args, data, "\n".join(lines) or "no changes")
    return 0


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return n


def _key_value(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {value!r}")
    return key, val


SHARED_HELP = ("the platform-wide version/alias every tenant without its own falls back to "
               "(admin key); default: your tenant's own (maintainer key)")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 parents: list[argparse.ArgumentParser]) -> None:
    """Adds `prompts ...` and `models ...`; parents: the shared --json/--tenant options."""
    prompts = sub.add_parser("prompts", help="prompt templates in the registry").add_subparsers(
        dest="prompts_cmd", required=True)
    prompts.add_parser("list", parents=parents).set_defaults(func=cmd_prompts)
    show = prompts.add_parser("show", parents=parents)
    show.add_argument("name")
    show.add_argument("--label", default="production")
    show.set_defaults(func=cmd_prompts)
    create = prompts.add_parser("create", parents=parents)
    create.add_argument("name")
    create.add_argument("file", help="Jinja2 template file")
    create.add_argument("--set-label", action="append")
    create.add_argument("--shared", action="store_true", help=SHARED_HELP)
    create.set_defaults(func=cmd_prompts)

    models = sub.add_parser("models", help="model versions and aliases in the registry"
                            ).add_subparsers(dest="models_cmd", required=True)
    ls = models.add_parser("list", parents=parents,
                           help="models, or the versions of one model (newest first)")
    ls.add_argument("name", nargs="?", default="")
    ls.set_defaults(func=cmd_models_list)
    mshow = models.add_parser("show", parents=parents, help="one version (default: production)")
    mshow.add_argument("name")
    which = mshow.add_mutually_exclusive_group()
    which.add_argument("--version", type=_positive)
    # No default here: argparse lets an explicit value that `is` the default slip past the
    # mutual exclusion, so `production` is filled in by cmd_models_show.
    which.add_argument("--alias", help="default production; `latest` is the newest version")
    mshow.set_defaults(func=cmd_models_show)
    reg = models.add_parser("register", parents=parents, help="register the next version")
    reg.add_argument("name")
    reg.add_argument("--artifact", required=True,
                     help="pkg://<package>/<file>, file:///path, s3://..., hf://org/repo")
    reg.add_argument("--format", required=True, help="hf, gguf, peft-lora, onnx")
    reg.add_argument("--base-model", default="")
    reg.add_argument("--meta", action="append", type=_key_value, metavar="KEY=VALUE")
    reg.add_argument("--shared", action="store_true", help=SHARED_HELP)
    reg.set_defaults(func=cmd_models_register)
    alias = models.add_parser("alias", parents=parents,
                              help="point an alias at a version (promote or roll back; "
                                   "inference follows it live)")
    alias.add_argument("name")
    alias.add_argument("alias")
    alias.add_argument("version", type=_positive)
    alias.add_argument("--reason", default="", help="recorded in the alias history")
    alias.add_argument("--shared", action="store_true", help=SHARED_HELP)
    alias.set_defaults(func=cmd_models_alias)
    hist = models.add_parser("history", parents=parents,
                             help="changes of an alias (or of every alias), newest first")
    hist.add_argument("name")
    hist.add_argument("alias", nargs="?", default="", help="default: every alias")
    hist.set_defaults(func=cmd_models_history)
