"""Request-scoped values (tenant, trace id) carried through asyncio tasks via contextvars."""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from llmops_kit.errors import DeadlineExceeded

tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
# The caller's own API key, so a service calling another one acts as the same caller.
api_key_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("api_key", default=None)
# The caller's gRPC deadline (time.monotonic() seconds), so calls made on its behalf end in time.
deadline_var: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


def new_trace_id() -> str:
    return uuid.uuid4().hex


def current_tenant() -> str | None:
    return tenant_var.get()


def current_trace_id() -> str | None:
    return trace_id_var.get()


def current_api_key() -> str | None:
    return api_key_var.get()


def time_left(cap: float) -> float:
    """Seconds a downstream call may take: `cap`, or less when the caller's deadline is sooner.

    Raises DeadlineExceeded once the deadline has passed, so no call starts that cannot finish.
    """
    deadline = deadline_var.get()
    if deadline is None:
        return cap
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("DEADLINE_EXCEEDED", "the caller's deadline has passed")
    return min(cap, left)


@contextmanager
def bound(tenant: str | None, trace_id: str | None, api_key: str | None = None,
          time_remaining: float | None = None) -> Iterator[None]:
    """Binds tenant, trace id (and the caller's key and deadline) for a request or an event."""
    t1 = tenant_var.set(tenant)
    t2 = trace_id_var.set(trace_id)
    t3 = api_key_var.set(api_key)
    t4 = deadline_var.set(None if time_remaining is None else time.monotonic() + time_remaining)
    try:
        yield
    finally:
        tenant_var.reset(t1)
        trace_id_var.reset(t2)
        api_key_var.reset(t3)
        deadline_var.reset(t4)
