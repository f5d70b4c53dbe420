"""Request-scoped values (tenant, trace id) carried through asyncio tasks via contextvars."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
# The caller's own API key, so a service calling another one acts as the same caller.
api_key_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("api_key", default=None)


def new_trace_id() -> str:
    return uuid.uuid4().hex


def current_tenant() -> str | None:
    return tenant_var.get()


def current_trace_id() -> str | None:
    return trace_id_var.get()


def current_api_key() -> str | None:
    return api_key_var.get()


@contextmanager
def bound(tenant: str | None, trace_id: str | None, api_key: str | None = None) -> Iterator[None]:
    """Binds tenant, trace id (and the caller's key) for a block: a request or an event."""
    t1 = tenant_var.set(tenant)
    t2 = trace_id_var.set(trace_id)
    t3 = api_key_var.set(api_key)
    try:
        yield
    finally:
        tenant_var.reset(t1)
        trace_id_var.reset(t2)
        api_key_var.reset(t3)
