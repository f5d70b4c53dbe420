"""Calling another platform service on the current caller's behalf.

`call_peer` is the one way a service calls a peer's unary RPC:
- as the same caller: its trace id and API key (`caller_metadata`; a service key instead
  where the service acts for itself, e.g. the vector-store's embedding calls),
- within the caller's deadline (`time_left`: the peer gets what is left, at most `timeout`;
  DeadlineExceeded before a call that cannot finish),
- traced and measured (grpc_telemetry.client_call: a CLIENT span, W3C `traceparent`),
- with the peer's failure turned into the kit's DomainError family: the class follows the
  status code and the reason is the peer's `x-error-reason`, so INVALID_ARGUMENT /
  QUERY_TOO_LONG from the embedding service reaches the client unchanged. A failure without
  a reason (connection refused, a peer outside the platform) is Unavailable with `unavailable`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from llmops_kit.context import time_left
from llmops_kit.errors import (
    DeadlineExceeded,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from llmops_kit.grpc_server import caller_metadata, error_reason
from llmops_kit.grpc_telemetry import client_call

Response = TypeVar("Response")

# Status codes that say something about the request or the caller, kept as they are. Every
# other code (UNAVAILABLE, INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED, ...) means the peer could not
# serve it: Unavailable, which callers may retry.
_BY_CODE: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def peer_error(exc: grpc.aio.AioRpcError, peer: str, unavailable: str) -> DomainError:
    """The DomainError for a failed call to `peer` (see the module doc)."""
    code = exc.code()
    kind = _BY_CODE.get(code, Unavailable)
    reason = error_reason(exc) or (unavailable if kind is Unavailable else code.name)
    detail = exc.details() or ""
    # A platform peer's details already start with its reason; don't say it twice.
    if detail.startswith(f"{reason}: "):
        detail = detail[len(reason) + 2:]
    return kind(reason, f"{peer}: {code.name}: {detail}".rstrip(": "))


async def call_peer(
    rpc: Callable[..., Awaitable[Response]],
    request: Any,
    *,
    peer: str,
    timeout: float,
    unavailable: str,
    api_key: str | None = None,
) -> Response:
    """`rpc(request)` as the current caller (or with `api_key`), within its deadline.

    `peer` names the service in error messages; `unavailable` is the reason when the peer
    gave none (e.g. "EMBEDDING_UNAVAILABLE").
    """
    budget = time_left(timeout)
    try:
        # A CLIENT span and the client-side metrics; its context goes out in the metadata.
        with client_call(rpc):
            return await rpc(request, metadata=caller_metadata(api_key), timeout=budget)
    except grpc.aio.AioRpcError as exc:
        raise peer_error(exc, peer, unavailable) from exc
