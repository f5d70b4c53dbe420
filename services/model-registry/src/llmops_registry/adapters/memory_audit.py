"""AuditLog kept in memory: the registry's default until the platform's SQL audit log (the kit's
store) is wired in bootstrap, and the fake of the unit tests. Lost on restart."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from llmops_kit.audit import AuditEntry


class MemoryAuditLog:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        self.entries.append(dataclasses.replace(entry, sequence=len(self.entries) + 1))

    async def query(self, tenant: str | None = None, action: str | None = None,
                    since: datetime | None = None, limit: int = 100) -> list[AuditEntry]:
        found = [e for e in reversed(self.entries)
                 if (tenant is None or e.tenant == tenant)
                 and (action is None or e.action == action)
                 and (since is None or e.occurred_at >= since)]
        return found[:limit]
