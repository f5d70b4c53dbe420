"""SwitchEmbeddingModel and GetEmbeddingStatus: proto <-> the re-embed job.

A switch re-embeds every tenant's chunks, so only the platform's own admins may ask for it
(role admin in the "platform" tenant); tenant admins get PERMISSION_DENIED. The status says
how far the job is, never which tenants it has seen.
"""

from __future__ import annotations

from llmops.vectorstore.v1 import vectorstore_pb2
from llmops_kit.audit import AuditEntry, AuditLog
from llmops_kit.auth import current_principal
from llmops_kit.context import current_tenant, current_trace_id
from llmops_kit.errors import InvalidArgument, PermissionDenied
from llmops_kit.keys import PLATFORM_TENANT
from llmops_vectorstore.domain.layout import EmbeddingState, ModelCollection
from llmops_vectorstore.domain.reembed import ReEmbedder

MAX_MODEL_CHARS = 200


def require_platform_admin() -> None:
    if current_tenant() != PLATFORM_TENANT:
        raise PermissionDenied(
            "PLATFORM_ADMIN_REQUIRED",
            f"switching the embedding model needs an admin key of the '{PLATFORM_TENANT}' tenant",
        )


def collection_pb(c: ModelCollection | None) -> vectorstore_pb2.EmbeddingCollection | None:
    if c is None:
        return None
    return vectorstore_pb2.EmbeddingCollection(
        model=c.model, dimensions=c.dimensions, collection=c.collection,
        tokenization=c.tokenization,
    )


def status_pb(state: EmbeddingState) -> vectorstore_pb2.EmbeddingStatus:
    return vectorstore_pb2.EmbeddingStatus(
        active=collection_pb(state.active),
        target=collection_pb(state.target),
        phase=state.phase.value,
        tenants_total=len(state.tenants),
        tenants_done=len(state.tenants_done),
        chunks_copied=state.chunks_copied,
        error=state.error,
        started_at=state.started_at,
        updated_at=state.updated_at,
        switched_at=state.switched_at,
        previous_model=state.previous.model if state.previous else "",
    )


async def switch(
    job: ReEmbedder, model: str, audit: AuditLog | None = None
) -> vectorstore_pb2.EmbeddingStatus:
    require_platform_admin()
    model = model.strip()
    if not model or len(model) > MAX_MODEL_CHARS:
        raise InvalidArgument("BAD_MODEL", "model must name an embedding model (e.g. 'muse')")
    before = await job.status()
    after = await job.switch(model)
    if audit is not None and after != before:
        await audit.record(audit_entry(before, after))
    return status_pb(after)


def audit_entry(before: EmbeddingState, after: EmbeddingState) -> AuditEntry:
    """A platform-wide change: who started (or resumed) which re-embed, from which model."""
    principal = current_principal()
    return AuditEntry(
        action="embedding.switch",
        target=after.target.model if after.target else after.active.model,
        tenant="",
        actor=principal.key_id if principal else "",
        actor_tenant=principal.tenant if principal else "",
        service="vector-store",
        before={"active": before.active.model,
                "target": before.target.model if before.target else None,
                "phase": before.phase.value},
        after={"active": after.active.model,
               "target": after.target.collection if after.target else None,
               "phase": after.phase.value},
        trace_id=current_trace_id() or "",
    )


async def status(job: ReEmbedder) -> vectorstore_pb2.EmbeddingStatus:
    require_platform_admin()
    return status_pb(await job.status())
