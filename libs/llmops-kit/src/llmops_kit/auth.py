"""Who is calling: roles, the principal bound to each request, and the check every RPC makes.

Roles are ordered: `member` (ingest, search, ask, feedback) < `maintainer` (the tenant's
prompts, aliases and promotions) < `admin` (the platform: tenants, keys, shared model versions
and shared aliases). A principal of a higher role may do what a lower one may.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from llmops_kit.errors import PermissionDenied, Unauthenticated


class Role(StrEnum):
    MEMBER = "member"
    MAINTAINER = "maintainer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Role.MEMBER: 0, Role.MAINTAINER: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Principal:
    """The caller behind an API key: its tenant, its role and the key's public id."""

    tenant: str
    role: Role
    key_id: str = ""

    def can(self, role: Role) -> bool:
        return self.role.rank >= role.rank


principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None)


def current_principal() -> Principal | None:
    return principal_var.get()


@contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Binds `principal` as the caller for the work done inside (the gRPC edge does this)."""
    token = principal_var.set(principal)
    try:
        yield
    finally:
        principal_var.reset(token)


def require(role: Role, action: str) -> Principal:
    """The current principal if it holds `role` (or a higher one); PERMISSION_DENIED otherwise."""
    principal = principal_var.get()
    if principal is None:
        raise Unauthenticated("NO_PRINCIPAL", f"{action}: the request carries no API key")
    if not principal.can(role):
        raise PermissionDenied(
            "ROLE_REQUIRED",
            f"{action} needs the '{role.value}' role; this key has '{principal.role.value}'")
    return principal
