"""Request-scoped values (tenant, trace id) carried through asyncio tasks via contextvars."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)


def new_trace_id() -> str:
    return uuid.uuid4().hex


def current_tenant() -> str | None:
    return tenant_var.get()


def current_trace_id() -> str | None:
    return trace_id_var.get()


@contextmanager
def bound(tenant: str | None, trace_id: str | None) -> Iterator[None]:
    """Binds tenant and trace id for the duration of a block (a request or an event)."""
    t1 = tenant_var.set(tenant)
    t2 = trace_id_var.set(trace_id)
    try:
        yield
    finally:
        tenant_var.reset(t1)
        trace_id_var.reset(t2)
