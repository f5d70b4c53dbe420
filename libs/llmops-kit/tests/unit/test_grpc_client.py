"""call_peer: the caller's key, trace id and deadline go out; a peer's failure comes back as a
DomainError of the matching class carrying the peer's reason."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from llmops_kit import context
from llmops_kit.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from llmops_kit.grpc_client import call_peer, peer_error

pytestmark = pytest.mark.unit


def rpc_error(code: grpc.StatusCode, details: str, reason: str | None = None) -> AioRpcError:
    trailers = Metadata(("x-error-reason", reason)) if reason else Metadata()
    return AioRpcError(code, Metadata(), trailers, details)


class Rpc:
    """Records what a stub method was called with; answers or fails as told."""

    def __init__(self, fail: AioRpcError | None = None) -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, request: Any, *, metadata: Any, timeout: float) -> str:
        self.calls.append({"request": request, "metadata": dict(metadata), "timeout": timeout})
        if self.fail is not None:
            raise self.fail
        return "ok"


@pytest.mark.parametrize(("code", "kind"), [
    (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
    (grpc.StatusCode.NOT_FOUND, NotFound),
    (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
    (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
    (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
    (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
    (grpc.StatusCode.UNAVAILABLE, Unavailable),
    (grpc.StatusCode.INTERNAL, Unavailable),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, Unavailable),
])
def test_code_picks_the_class_and_the_peer_reason_is_kept(code, kind):
    err = peer_error(rpc_error(code, "PEER_REASON: what went wrong", "PEER_REASON"),
                     "embedding", "EMBEDDING_UNAVAILABLE")
    assert type(err) is kind
    assert err.reason == "PEER_REASON"
    assert err.code == kind.code
    assert err.message == f"embedding: {code.name}: what went wrong"


def test_without_a_reason_unavailable_gets_the_fallback_and_others_the_code_name():
    down = peer_error(rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused"),
                      "safety", "SAFETY_UNAVAILABLE")
    assert (type(down), down.reason) == (Unavailable, "SAFETY_UNAVAILABLE")
    assert down.message == "safety: UNAVAILABLE: connection refused"
    missing = peer_error(rpc_error(grpc.StatusCode.NOT_FOUND, ""), "registry", "X")
    assert (type(missing), missing.reason, missing.message) == (
        NotFound, "NOT_FOUND", "registry: NOT_FOUND")


async def test_call_sends_the_callers_key_trace_and_remaining_deadline():
    rpc = Rpc()
    with context.bound("acme", "trace-1", "k-acme", time_remaining=2.0):
        assert await call_peer(rpc, "req", peer="p", timeout=30, unavailable="P_DOWN") == "ok"
    (call,) = rpc.calls
    assert call["request"] == "req"
    assert call["metadata"] == {"x-trace-id": "trace-1", "x-api-key": "k-acme"}
    assert 1.5 < call["timeout"] <= 2.0  # the caller's deadline, not the 30 s cap


async def test_service_key_and_cap_without_a_caller():
    rpc = Rpc()
    await call_peer(rpc, "req", peer="p", timeout=7, unavailable="P_DOWN", api_key="svc")
    assert rpc.calls[0]["metadata"]["x-api-key"] == "svc"
    assert rpc.calls[0]["timeout"] == 7


async def test_call_maps_the_failure_and_chains_it():
    rpc = Rpc(rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "QUERY_TOO_LONG: 9000 tokens",
                        "QUERY_TOO_LONG"))
    with pytest.raises(InvalidArgument) as info:
        await call_peer(rpc, "req", peer="embedding", timeout=1, unavailable="EMB_DOWN")
    assert info.value.reason == "QUERY_TOO_LONG"
    assert isinstance(info.value.__cause__, AioRpcError)


async def test_no_call_once_the_deadline_has_passed():
    rpc = Rpc()
    with context.bound("acme", "t", "k", time_remaining=0.0), pytest.raises(DeadlineExceeded):
        await call_peer(rpc, "req", peer="p", timeout=5, unavailable="P_DOWN")
    assert rpc.calls == []
