"""Canary routing of one request (pure): which of production and the candidate serves it.

The registry's canary of a tenant says which share of its `production` requests the
candidate serves. A request without a session draws once, when it starts (resolution happens
once per request, so a request in flight finishes on the version it started with whatever
changes meanwhile). A request with a session (GenerateRequest.session_id) uses a draw fixed by
a hash of tenant, session and canary: every request of the session lands on the same version
while the share is unchanged, and a session on the candidate stays there when the share rises
(the draw is compared with a larger share). A new canary (another id) reshuffles sessions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from llmops_inference.domain.model import ModelRef

MAX_SESSION_CHARS = 128
_session: ContextVar[str] = ContextVar("llmops_canary_session", default="")


@dataclass(frozen=True)
class CanaryRoute:
    """A progressing canary: `share` percent (0-100) of requests go to `candidate`;
    `canary_id` names this canary (one start of one candidate), the seed of session draws."""

    share: int
    candidate: ModelRef
    canary_id: str = ""


def route(production: ModelRef, canary: CanaryRoute | None, draw: float) -> ModelRef:
    """`draw` is uniform in [0, 1): the candidate when it falls under the share."""
    if canary is None or canary.share <= 0 or draw * 100 >= canary.share:
        return production
    return dataclasses.replace(canary.candidate, canary=True)


def session_draw(tenant: str, session: str, canary_id: str) -> float:
    """A draw in [0, 1) that is the same for every request of one session under one canary
    (uniform over sessions: the first 8 bytes of a SHA-256)."""
    digest = hashlib.sha256("\x1f".join((tenant, session, canary_id)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@contextlib.contextmanager
def bound_session(session_id: str) -> Iterator[None]:
    """The caller's session for the canary resolution of the requests made inside."""
    token = _session.set(session_id)
    try:
        yield
    finally:
        # A stream (async generator) finalised from another task runs this in a context that
        # never saw the set: nothing to undo there.
        with contextlib.suppress(ValueError):
            _session.reset(token)


def current_session() -> str:
    return _session.get()
