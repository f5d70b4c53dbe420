"""TenantData on the registry's SQL store: what a deleted tenant leaves behind.

Shared models, prompts, their versions, pointers and histories stay (scope ""). The tenant's
own scope goes: its aliases and labels, their history, its private model and prompt versions
and its canaries and evaluation runs. Its outbox rows: published ones are deleted, and ones not yet
published are detached from the tenant (they are still published, so consumers' caches follow).
One transaction.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from llmops_registry.adapters import sql_family as f
from llmops_registry.adapters.sql_evaluation import EVALUATION_COMPLETED
from llmops_registry.adapters.sql_rollout_schema import CanaryRow
from llmops_registry.adapters.sql_schema import (
    EvaluationResultRow,
    EvaluationRunRow,
    ModelAliasHistoryRow,
    ModelAliasRow,
    ModelVersionRow,
    OutboxRow,
    PromptLabelHistoryRow,
    PromptLabelRow,
    PromptVersionRow,
)

# Canaries, pointers and history before the versions they reference.
SCOPED = (CanaryRow, ModelAliasRow, PromptLabelRow, ModelAliasHistoryRow, PromptLabelHistoryRow,
          ModelVersionRow, PromptVersionRow, EvaluationResultRow, EvaluationRunRow)
# The outbox kind announcing each scoped row (its ref_id is that row's id).
ANNOUNCED = ((f.MODEL_VERSION_CREATED, ModelVersionRow), (f.PROMPT_VERSION_CREATED, PromptVersionRow),
             (f.MODEL_ALIAS_CHANGED, ModelAliasHistoryRow),
             (f.PROMPT_LABEL_CHANGED, PromptLabelHistoryRow),
             (EVALUATION_COMPLETED, EvaluationRunRow))

DETACHED = ""


class SqlTenantData:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _delete(self, tenant: str) -> int:
        if not tenant:
            raise ValueError("the shared scope is not a tenant")
        with Session(self.engine) as s, s.begin():
            # Unpublished announcements of the tenant's own rows go with the rows.
            for kind, table in ANNOUNCED:
                s.execute(delete(OutboxRow).where(
                    OutboxRow.kind == kind, OutboxRow.published_at.is_(None),
                    OutboxRow.ref_id.in_(select(table.id).where(table.tenant == tenant))))
            scoped = 0
            for scoped_table in SCOPED:
                scoped += int(s.execute(  # type: ignore[attr-defined]
                    delete(scoped_table).where(scoped_table.tenant == tenant)).rowcount or 0)
            published = s.execute(delete(OutboxRow).where(
                OutboxRow.tenant == tenant, OutboxRow.published_at.is_not(None)))
            pending = s.execute(update(OutboxRow).where(
                OutboxRow.tenant == tenant, OutboxRow.published_at.is_(None),
            ).values(tenant=DETACHED, trace_id=""))
            return scoped + int(published.rowcount or 0) + int(pending.rowcount or 0)  # type: ignore[attr-defined]

    async def delete_tenant_data(self, tenant: str) -> int:
        return await asyncio.to_thread(self._delete, tenant)
