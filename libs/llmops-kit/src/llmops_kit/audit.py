"""The audit log port: every privileged action (tenant and key changes, model registration,
alias and label moves, deletions) is recorded with its actor, tenant, time, before and after."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class AuditEntry:
    action: str  # e.g. tenant.create, key.revoke, model.register, alias.set, document.delete
    target: str  # what changed: a tenant id, a key id, "model-name@alias", a document id
    tenant: str  # whose data changed ("" for platform-wide changes)
    actor: str  # key id of the caller, never the secret
    actor_tenant: str
    service: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    trace_id: str = ""
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sequence: int = 0  # assigned by the store


@runtime_checkable
class AuditLog(Protocol):
    async def record(self, entry: AuditEntry) -> None: ...

    async def query(self, tenant: str | None = None, action: str | None = None,
                    since: datetime | None = None, limit: int = 100) -> list[AuditEntry]: ...
