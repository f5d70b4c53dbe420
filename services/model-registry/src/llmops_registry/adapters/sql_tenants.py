"""TenantData on the registry's SQL store: what a deleted tenant leaves behind.

Models, prompts, their versions, pointers and histories are shared by every tenant and stay
(their `created_by`/`actor` columns are the audit trail of shared objects). What belongs to the
tenant is its outbox rows: published ones are deleted, and ones not yet published (they announce
shared changes, so they must still go out) are detached from the tenant. Tenant-scoped tables
added later (tenant aliases...) get their DELETE here, in the same transaction.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from llmops_registry.adapters.sql_schema import OutboxRow

DETACHED = ""


class SqlTenantData:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _delete(self, tenant: str) -> int:
        with Session(self.engine) as s, s.begin():
            published = s.execute(delete(OutboxRow).where(
                OutboxRow.tenant == tenant, OutboxRow.published_at.is_not(None)))
            pending = s.execute(update(OutboxRow).where(
                OutboxRow.tenant == tenant, OutboxRow.published_at.is_(None),
            ).values(tenant=DETACHED, trace_id=""))
            return int(published.rowcount or 0) + int(pending.rowcount or 0)  # type: ignore[attr-defined]

    async def delete_tenant_data(self, tenant: str) -> int:
        return await asyncio.to_thread(self._delete, tenant)
