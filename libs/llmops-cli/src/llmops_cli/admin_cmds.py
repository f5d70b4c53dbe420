"""`llmops tenants`, `llmops keys` and `llmops audit`: AdminService (hosted by model-registry).

The key used is --api-key, else LLMOPS_ADMIN_KEY, else LLMOPS_API_KEY, else (development mode
only) the development admin key. A new key's secret is printed once and never again.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from llmops.admin.v1 import admin_pb2, admin_pb2_grpc
from llmops_cli.client import admin_key, metadata
from llmops_cli.registry_cmds import _emit, _when
from llmops_kit import ports

TIMEOUT = 30.0
ROLES = {"member": admin_pb2.ROLE_MEMBER, "maintainer": admin_pb2.ROLE_MAINTAINER,
         "admin": admin_pb2.ROLE_ADMIN}
ROLE_NAMES = {v: k for k, v in ROLES.items()}
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: str) -> int:
    """`90`, `90s`, `30m`, `12h`, `90d` -> seconds."""
    match = _DURATION.match(value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration like 3600, 30m, 12h or 90d, "
                                         f"not {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def since(value: str) -> datetime:
    """An ISO time (UTC if no offset) or a duration back from now (`1h`, `7d`)."""
    if _DURATION.match(value.strip()):
        return datetime.now(UTC) - timedelta(seconds=duration(value))
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an ISO time or a duration, not {value!r}"
                                         ) from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@asynccontextmanager
async def _admin() -> AsyncIterator[admin_pb2_grpc.AdminServiceAsyncStub]:
    address = (os.environ.get("LLMOPS_ADMIN_ADDR") or os.environ.get("LLMOPS_REGISTRY_ADDR")
               or ports.service_address("model-registry"))
    async with grpc.aio.insecure_channel(address) as ch:
        yield cast("admin_pb2_grpc.AdminServiceAsyncStub", admin_pb2_grpc.AdminServiceStub(ch))


def _md(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    return metadata(admin_key(args.api_key))


def _dict(msg: Message) -> dict[str, Any]:
    return MessageToDict(msg, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


def _key_line(k: admin_pb2.ApiKey) -> str:
    parts = [k.key_id, k.tenant_id, ROLE_NAMES.get(k.role, "?"), f"created {_when(k, 'created_at')}"]
    parts += [f"{label} {_when(k, field)}" for label, field in [
        ("expires", "expires_at"), ("last used", "last_used_at"), ("REVOKED", "revoked_at")]
        if _when(k, field)]
    if k.description:
        parts.append(f"({k.description})")
    return "  ".join(parts)


async def cmd_tenants(args: argparse.Namespace) -> int:
    md = _md(args)
    async with _admin() as stub:
        if args.tenants_cmd == "create":
            t = await stub.CreateTenant(admin_pb2.CreateTenantRequest(
                tenant_id=args.tenant_id, display_name=args.name), metadata=md, timeout=TIMEOUT)
            _emit(args, _dict(t), f"created tenant {t.tenant_id}")
        elif args.tenants_cmd == "list":
            resp = await stub.ListTenants(admin_pb2.ListTenantsRequest(), metadata=md,
                                          timeout=TIMEOUT)
            lines = [f"{t.tenant_id}  {t.display_name or '-'}  created {_when(t, 'created_at')}"
                     for t in resp.tenants]
            _emit(args, {"tenants": [_dict(t) for t in resp.tenants]},
                  "\n".join(lines) or "no tenants")
        else:
            if not args.yes:
                raise SystemExit(f"deleting tenant {args.tenant_id} removes its keys and all of "
                                 "its data in every service; add --yes to go ahead")
            resp = await stub.DeleteTenant(admin_pb2.DeleteTenantRequest(
                tenant_id=args.tenant_id), metadata=md, timeout=TIMEOUT)
            _emit(args, _dict(resp), f"deleted tenant {resp.tenant_id}: {resp.revoked_keys} "
                  "key(s) revoked; every service removes its data")
    return 0


async def cmd_keys(args: argparse.Namespace) -> int:
    md = _md(args)
    async with _admin() as stub:
        if args.keys_cmd == "create":
            created = await stub.CreateKey(admin_pb2.CreateKeyRequest(
                tenant_id=args.tenant, role=ROLES[args.role], description=args.description,
                ttl_seconds=args.ttl), metadata=md, timeout=TIMEOUT)
            text = (f"{_key_line(created.key)}\n\n{created.secret}\n\n"
                    "This is the only time the key is shown: store it now (it is kept hashed).")
            _emit(args, _dict(created), text)
        elif args.keys_cmd == "list":
            resp = await stub.ListKeys(admin_pb2.ListKeysRequest(
                tenant_id=args.tenant, include_revoked=args.all), metadata=md, timeout=TIMEOUT)
            _emit(args, {"keys": [_dict(k) for k in resp.keys]},
                  "\n".join(_key_line(k) for k in resp.keys) or "no keys")
        else:
            k = await stub.RevokeKey(admin_pb2.RevokeKeyRequest(key_id=args.key_id),
                                     metadata=md, timeout=TIMEOUT)
            _emit(args, _dict(k), f"revoked {k.key_id} ({k.tenant_id}, "
                  f"{ROLE_NAMES.get(k.role, '?')}); every service refuses it within seconds")
    return 0


async def cmd_audit(args: argparse.Namespace) -> int:
    req = admin_pb2.ListAuditEntriesRequest(tenant_id=args.tenant, action=args.action,
                                            limit=args.limit)
    if args.since is not None:
        req.since.FromDatetime(args.since)
    async with _admin() as stub:
        resp = await stub.ListAuditEntries(req, metadata=_md(args), timeout=TIMEOUT)
    lines = [" ".join(p for p in [
        f"#{e.sequence}", _when(e, "occurred_at"), e.action, e.target,
        f"tenant={e.tenant_id}" if e.tenant_id else "", f"by {e.actor} ({e.actor_tenant})",
        f"via {e.service}"] if p) for e in resp.entries]
    _emit(args, {"entries": [_dict(e) for e in resp.entries]}, "\n".join(lines) or "no entries")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    """Adds `tenants ...`, `keys ...` and `audit`; common: the shared --json option."""
    key = argparse.ArgumentParser(add_help=False)
    key.add_argument("--api-key", default=None,
                     help="default: LLMOPS_ADMIN_KEY, LLMOPS_API_KEY, dev admin key in dev mode")
    parents = [common, key]
    tenants = sub.add_parser("tenants", help="tenants (admin)").add_subparsers(
        dest="tenants_cmd", required=True)
    tc = tenants.add_parser("create", parents=parents, help="create a tenant")
    tc.add_argument("tenant_id")
    tc.add_argument("--name", default="", help="display name")
    tc.set_defaults(func=cmd_tenants)
    tenants.add_parser("list", parents=parents).set_defaults(func=cmd_tenants)
    td = tenants.add_parser("delete", parents=parents,
                            help="delete a tenant: revokes its keys, removes its data everywhere")
    td.add_argument("tenant_id")
    td.add_argument("--yes", action="store_true", help="confirm")
    td.set_defaults(func=cmd_tenants)

    keys = sub.add_parser("keys", help="API keys (admin; maintainers: their member keys)"
                          ).add_subparsers(dest="keys_cmd", required=True)
    kc = keys.add_parser("create", parents=parents, help="create a key; prints it once")
    kc.add_argument("--tenant", default="", help="default: the caller's tenant")
    kc.add_argument("--role", choices=sorted(ROLES), default="member")
    kc.add_argument("--description", default="")
    kc.add_argument("--ttl", type=duration, default=0,
                    help="expires after (3600, 30m, 12h, 90d); default never")
    kc.set_defaults(func=cmd_keys)
    kl = keys.add_parser("list", parents=parents)
    kl.add_argument("--tenant", default="", help="default: every tenant (admin)")
    kl.add_argument("--all", action="store_true", help="include revoked keys")
    kl.set_defaults(func=cmd_keys)
    kr = keys.add_parser("revoke", parents=parents, help="revoke a key by its key id")
    kr.add_argument("key_id")
    kr.set_defaults(func=cmd_keys)

    audit = sub.add_parser("audit", parents=parents, help="the audit log, newest first (admin)")
    audit.add_argument("--tenant", default="")
    audit.add_argument("--action", default="", help="e.g. key.create, tenant.delete, alias.set")
    audit.add_argument("--since", type=since, default=None, help="ISO time or 1h, 7d ...")
    audit.add_argument("--limit", type=int, default=100)
    audit.set_defaults(func=cmd_audit)
