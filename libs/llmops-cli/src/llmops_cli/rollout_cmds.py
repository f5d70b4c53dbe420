"""`llmops models canary|rollback`: canary rollouts of a tenant's production model.

    llmops models canary NAME@VERSION --share 10 --step 20 --interval 30s --threshold 2
    llmops models canary NAME@VERSION --override "why" --wait   # past a refusing gate, then follow it
    llmops models canary status NAME [--wait]
    llmops models canary abort NAME
    llmops models rollback NAME

A canary and a rollback are the caller's tenant's own (a maintainer key). The steps the
registry's controller takes land in the alias history: `llmops models history NAME`.
`--wait` (start or status) follows the canary until the controller ends it, printing each
step, and exits 0 when it was promoted, 1 when it was rolled back or aborted, 3 when it is
still progressing after --wait-timeout (as `kubectl argo rollouts status` does).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import grpc

from llmops.registry.v1 import rollout_pb2, rollout_pb2_grpc
from llmops_cli.registry_cmds import TIMEOUT, _dict, _emit, _md, _when
from llmops_kit import ports

STATES = {rollout_pb2.CANARY_STATE_PROGRESSING: "progressing",
          rollout_pb2.CANARY_STATE_PROMOTED: "promoted",
          rollout_pb2.CANARY_STATE_ROLLED_BACK: "rolled back",
          rollout_pb2.CANARY_STATE_ABORTED: "aborted"}
_DURATION = re.compile(r"^(\d+)(s|m|h)?$")
# `--wait` exit codes: promoted, ended otherwise (rolled back, aborted), still progressing.
WAIT_EXIT = {rollout_pb2.CANARY_STATE_PROMOTED: 0, rollout_pb2.CANARY_STATE_ROLLED_BACK: 1,
             rollout_pb2.CANARY_STATE_ABORTED: 1}
WAIT_TIMED_OUT = 3


def duration(value: str) -> int:
    """Seconds of `30`, `30s`, `5m` or `1h`."""
    match = _DURATION.match(value.strip())
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"expected a duration like 30s, 5m or 1h, not {value!r}")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]


def percent(value: str) -> int:
    n = int(value.rstrip("%"))
    if not 1 <= n <= 100:
        raise argparse.ArgumentTypeError(f"must be 1-100, not {value}")
    return n


def name_at_version(value: str) -> tuple[str, int]:
    name, sep, version = value.rpartition("@")
    if not sep or not name or not version.isdigit() or int(version) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME@VERSION, not {value!r}")
    return name, int(version)


@asynccontextmanager
async def _rollout() -> AsyncIterator[rollout_pb2_grpc.RolloutServiceAsyncStub]:
    async with grpc.aio.insecure_channel(
            os.environ.get("LLMOPS_REGISTRY_ADDR", ports.service_address("model-registry"))) as ch:
        yield cast("rollout_pb2_grpc.RolloutServiceAsyncStub",
                   rollout_pb2_grpc.RolloutServiceStub(ch))


def describe(c: rollout_pb2.Canary) -> str:
    state = STATES.get(c.state, "unknown")
    lines = [f"{c.name}: canary v{c.candidate_version} vs production v{c.production_version}"
             f" [{c.tenant_id}]: {state}"
             + (f" at {c.share}%" if c.state == rollout_pb2.CANARY_STATE_PROGRESSING else ""),
             f"step {c.step}% every {c.interval_seconds}s up to {c.max_share}%; failed checks "
             f"{c.failed_checks} of {c.threshold}; rollback goes to v{c.last_good_version}"]
    t = c.thresholds
    lines.append(f"limits: error rate +{t.max_error_rate_increase:g}, p95 latency "
                 f"x{t.max_latency_ratio:g}, safety blocks +{t.max_safety_block_increase:g}, "
                 f"groundedness -{t.max_groundedness_drop:g}, negative feedback "
                 f"+{t.max_negative_feedback_increase:g}, at least {t.min_requests} requests")
    if next_check := _when(c, "next_check_at"):
        lines.append(f"next check: {next_check}")
    if c.reason:
        lines.append(f"last: {c.reason}")
    return "\n".join(lines)


def progress_line(c: rollout_pb2.Canary) -> str:
    """One line per change while waiting: `progressing at 50% (failed checks 0 of 2): ...`."""
    state = STATES.get(c.state, "unknown")
    line = state + (f" at {c.share}%" if c.state == rollout_pb2.CANARY_STATE_PROGRESSING
                    else "") + f" (failed checks {c.failed_checks} of {c.threshold})"
    return line + (f": {c.reason}" if c.reason else "")


async def wait_until_done(get: Callable[[], Awaitable[rollout_pb2.Canary]], timeout: float,
                          poll: float, report: Callable[[rollout_pb2.Canary], None]
                          ) -> rollout_pb2.Canary:
    """Polls the canary until it is no longer progressing or `timeout` seconds passed; calls
    `report` with every canary whose state, share, failed checks or reason changed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: tuple[int, int, int, str] | None = None
    while True:
        c = await get()
        key = (c.state, c.share, c.failed_checks, c.reason)
        if key != seen:
            report(c)
            seen = key
        left = deadline - loop.time()
        if c.state != rollout_pb2.CANARY_STATE_PROGRESSING or left <= 0:
            return c
        await asyncio.sleep(min(poll, left))


def start_request(args: argparse.Namespace, name: str, version: int
                  ) -> rollout_pb2.StartCanaryRequest:
    """`--override REASON` is `--override-gate --reason REASON` (as `models promote`'s)."""
    return rollout_pb2.StartCanaryRequest(
        name=name, candidate_version=version, share=args.share, step=args.step,
        max_share=args.max_share, interval_seconds=args.interval, threshold=args.threshold,
        reason=args.override or args.reason,
        override_gate=args.override_gate or bool(args.override),
        thresholds=rollout_pb2.CanaryThresholds(min_requests=args.min_requests or 0))


async def _follow(args: argparse.Namespace, stub: rollout_pb2_grpc.RolloutServiceAsyncStub,
                  name: str, md: tuple[tuple[str, str], ...]) -> int:
    def report(c: rollout_pb2.Canary) -> None:
        if not args.json:
            print(f"{time.strftime('%H:%M:%S')} {progress_line(c)}", flush=True)

    async def get() -> rollout_pb2.Canary:
        c: rollout_pb2.Canary = await stub.GetCanary(
            rollout_pb2.GetCanaryRequest(name=name), metadata=md, timeout=TIMEOUT)
        return c

    c = await wait_until_done(get, args.wait_timeout, args.poll, report)
    done = c.state != rollout_pb2.CANARY_STATE_PROGRESSING
    _emit(args, _canary_dict(c), describe(c) if done else
          f"still progressing after {args.wait_timeout}s\n" + describe(c))
    return WAIT_EXIT.get(c.state, 1) if done else WAIT_TIMED_OUT


async def cmd_canary(args: argparse.Namespace) -> int:
    md = _md(args)
    async with _rollout() as stub:
        if args.target in ("status", "abort"):
            if not args.name:
                print(f"usage: llmops models canary {args.target} NAME", file=sys.stderr)
                return 2
            if args.target == "status":
                if args.wait:
                    return await _follow(args, stub, args.name, md)
                c = await stub.GetCanary(rollout_pb2.GetCanaryRequest(name=args.name),
                                         metadata=md, timeout=TIMEOUT)
            else:
                c = await stub.AbortCanary(rollout_pb2.AbortCanaryRequest(
                    name=args.name, reason=args.reason), metadata=md, timeout=TIMEOUT)
            _emit(args, _canary_dict(c), describe(c))
            return 0
        try:
            name, version = name_at_version(args.target)
        except argparse.ArgumentTypeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        c = await stub.StartCanary(start_request(args, name, version), metadata=md,
                                   timeout=TIMEOUT)
        if args.wait:
            if not args.json:
                print("started\n" + describe(c), flush=True)
            return await _follow(args, stub, name, md)
    _emit(args, _canary_dict(c), "started\n" + describe(c))
    return 0


def _canary_dict(c: rollout_pb2.Canary) -> dict[str, Any]:
    data = _dict(c)
    data["state"] = STATES.get(c.state, "unknown").replace(" ", "_")
    return data


async def cmd_rollback(args: argparse.Namespace) -> int:
    md = _md(args)
    async with _rollout() as stub:
        resp = await stub.Rollback(rollout_pb2.RollbackRequest(name=args.name,
                                                               reason=args.reason),
                                   metadata=md, timeout=TIMEOUT)
    text = f"{args.name} production: v{resp.from_version} -> v{resp.to_version}"
    if resp.HasField("canary"):
        text += f" (canary of v{resp.canary.candidate_version} rolled back)"
    data = {"name": args.name, "from_version": resp.from_version,
            "to_version": resp.to_version,
            "canary": _canary_dict(resp.canary) if resp.HasField("canary") else None}
    _emit(args, data, text)
    return 0


def _models_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]
                   ) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    models = sub.choices["models"]
    for action in models._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("`models` has no sub-commands: add registry_cmds first")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 parents: list[argparse.ArgumentParser]) -> None:
    """Adds `models canary` and `models rollback` (after registry_cmds added `models`)."""
    models = _models_parser(sub)
    canary = models.add_parser(
        "canary", parents=parents,
        help="send a share of your tenant's production traffic to a version; the registry "
             "raises it while healthy and rolls back when not (or: status NAME, abort NAME)")
    canary.add_argument("target", help="NAME@VERSION to start, or `status` / `abort`")
    canary.add_argument("name", nargs="?", default="", help="the model (status, abort)")
    canary.add_argument("--share", type=percent, default=10, help="initial percent (10)")
    canary.add_argument("--step", type=percent, default=20,
                        help="percent added per passing check (20)")
    canary.add_argument("--max-share", type=percent, default=100,
                        help="a passing check at this share promotes (100)")
    canary.add_argument("--interval", type=duration, default=60,
                        help="time between checks: 30s, 5m (60s)")
    canary.add_argument("--threshold", type=int, default=2,
                        help="failed checks that roll back (2)")
    canary.add_argument("--min-requests", type=int, default=0,
                        help="candidate requests a check needs (registry default)")
    canary.add_argument("--reason", default="", help="recorded in the alias history")
    canary.add_argument("--override-gate", action="store_true",
                        help="start although the evaluation gate refuses (needs --reason)")
    canary.add_argument("--override", default="", metavar="REASON",
                        help="--override-gate with this reason (recorded in the alias history)")
    canary.add_argument("--wait", action="store_true",
                        help="follow it until promoted (exit 0), rolled back or aborted (1)")
    canary.add_argument("--wait-timeout", type=duration, default=900,
                        help="give up waiting after this long (exit 3): 10m (15m)")
    canary.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    canary.set_defaults(func=cmd_canary)
    rollback = models.add_parser(
        "rollback", parents=parents,
        help="put the previous production version back (stops a canary at once)")
    rollback.add_argument("name")
    rollback.add_argument("--reason", default="")
    rollback.set_defaults(func=cmd_rollback)
