"""Records the registry's privileged actions in the platform's audit log (llmops_kit.audit).

A change is committed before it is audited: the audit log is another store, and failing the
call after the commit would not undo the change but would make clients retry it (registering a
second version). A failed record is logged as an error naming the action, and the call
succeeds.
"""

from __future__ import annotations

import logging
from typing import Any

from llmops_kit.audit import AuditEntry, AuditLog
from llmops_registry.domain.model import Actor

log = logging.getLogger(__name__)

SERVICE = "model-registry"

MODEL_REGISTER = "model.register"
ALIAS_SET = "alias.set"
ALIAS_DELETE = "alias.delete"
PROMPT_CREATE = "prompt.create"
LABEL_SET = "label.set"


def version_state(version: int) -> dict[str, Any] | None:
    """A pointer's state for before/after: None when it does not exist (version 0)."""
    return {"version": version} if version else None


class Auditor:
    def __init__(self, audit_log: AuditLog) -> None:
        self.audit_log = audit_log

    async def record(self, actor: Actor, action: str, target: str, scope: str,
                     before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        """`scope` is whose data changed: a tenant, or "" for what every tenant is served."""
        entry = AuditEntry(action=action, target=target, tenant=scope, actor=actor.key_id,
                           actor_tenant=actor.tenant, service=SERVICE, before=before,
                           after=after, trace_id=actor.trace_id)
        try:
            await self.audit_log.record(entry)
        except Exception as exc:
            log.error("audit entry not recorded: %s %s: %s: %s", action, target,
                      type(exc).__name__, exc)
