"""Model use cases: register versions, read them, move aliases; every write is published and
audited.

Scopes: a write with shared=True writes the platform-wide version or alias (the caller checked
the admin role); otherwise it writes the actor's own tenant's (maintainer). No write can name
another tenant's scope. Reads are made for one tenant (see ports.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmops_registry.domain import audit as a
from llmops_registry.domain import validation as v
from llmops_registry.domain.audit import Auditor
from llmops_registry.domain.model import (
    SHARED,
    Actor,
    Lineage,
    ModelVersion,
    NewModelVersion,
    Page,
    PointerChange,
    PointerMove,
    Summary,
)
from llmops_registry.domain.outbox import OutboxRelay
from llmops_registry.ports import ModelStore

DEFAULT_FORMATS = ("hf", "gguf", "peft-lora", "onnx")


@dataclass(frozen=True)
class Policy:
    formats: tuple[str, ...] = DEFAULT_FORMATS
    limits: v.Limits = field(default_factory=v.Limits)


def scope_of(actor: Actor, shared: bool) -> str:
    """The scope a write goes to: shared, or the actor's own tenant (never another one)."""
    if shared:
        return SHARED
    if not actor.tenant:
        raise ValueError("a tenant-scoped write needs the actor's tenant")
    return actor.tenant


class ModelRegistry:
    def __init__(self, store: ModelStore, relay: OutboxRelay, policy: Policy,
                 auditor: Auditor) -> None:
        self.store = store
        self.relay = relay
        self.policy = policy
        self.auditor = auditor

    def validate_new(self, name: str, artifact_uri: str, base_model: str, fmt: str,
                     metadata: Mapping[str, str], lineage: Lineage) -> NewModelVersion:
        name = v.check_name(name, "model")
        return NewModelVersion(
            name=name,
            artifact_uri=v.check_uri(artifact_uri, "artifact_uri", required=True),
            base_model=v.check_text(base_model, "base_model"),
            format=v.check_format(fmt, self.policy.formats),
            metadata=v.check_metadata(metadata),
            lineage=v.check_lineage(lineage, name),
        )

    async def register(self, actor: Actor, new: NewModelVersion,
                       shared: bool = False) -> ModelVersion:
        scope = scope_of(actor, shared)
        created = await self.store.create_model_version(new, actor, scope=scope)
        if created is None:  # only seeding asks for only_if_absent
            raise RuntimeError("store skipped a registration it was not asked to skip")
        await self.auditor.record(
            actor, a.MODEL_REGISTER, f"{created.name}/v{created.version}", scope, None,
            {"version": created.version, "artifact_uri": created.artifact_uri,
             "format": created.format, "base_model": created.base_model})
        await self.relay.flush()
        return created

    async def seed(self, actor: Actor, new: NewModelVersion, alias: str) -> ModelVersion | None:
        """Registers shared `new` with shared `alias` unless the model has versions already
        (idempotent)."""
        return await self.store.create_model_version(
            new, actor, [v.check_pointer(alias, "alias", settable=True)], scope=SHARED,
            only_if_absent=True)

    async def get(self, tenant: str, name: str, version: int | None = None,
                  alias: str | None = None) -> ModelVersion:
        v.check_name(name, "model")
        if version is not None:
            v.check_version(version)
        if alias is not None:
            v.check_pointer(alias, "alias", settable=False)
        return await self.store.get_model_version(name, version, alias, tenant=tenant)

    async def list_versions(self, tenant: str, name: str, page_size: int = 0,
                            page_token: str = "") -> Page[ModelVersion]:
        v.check_name(name, "model")
        size = v.page_size(page_size, self.policy.limits)
        before = v.decode_int_token(page_token)
        rows = await self.store.list_model_versions(name, size + 1, before, tenant=tenant)
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, v.encode_token(rows[-1].version) if more else "")

    async def list_models(self, tenant: str, page_size: int = 0,
                          page_token: str = "") -> Page[Summary]:
        size = v.page_size(page_size, self.policy.limits)
        rows = await self.store.list_models(size + 1, v.decode_str_token(page_token),
                                            tenant=tenant)
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, v.encode_token(rows[-1].name) if more else "")

    async def set_alias(self, actor: Actor, name: str, alias: str, version: int,
                        reason: str = "", shared: bool = False) -> PointerMove:
        v.check_name(name, "model")
        v.check_pointer(alias, "alias", settable=True)
        v.check_version(version)
        v.check_text(reason, "reason", v.MAX_REASON)
        scope = scope_of(actor, shared)
        move = await self.store.set_alias(name, alias, version, reason, actor, scope=scope)
        if move.changed:
            await self.auditor.record(actor, a.ALIAS_SET, f"{name}@{alias}", scope,
                                      a.version_state(move.previous_version),
                                      a.version_state(move.version))
            await self.relay.flush()
        return move

    async def delete_alias(self, actor: Actor, name: str, alias: str, reason: str = "",
                           shared: bool = False) -> int:
        v.check_name(name, "model")
        v.check_pointer(alias, "alias", settable=True)
        v.check_text(reason, "reason", v.MAX_REASON)
        scope = scope_of(actor, shared)
        previous = await self.store.delete_alias(name, alias, reason, actor, scope=scope)
        await self.auditor.record(actor, a.ALIAS_DELETE, f"{name}@{alias}", scope,
                                  a.version_state(previous), None)
        await self.relay.flush()
        return previous

    async def alias_history(self, tenant: str, name: str, alias: str = "", page_size: int = 0,
                            page_token: str = "") -> Page[PointerChange]:
        v.check_name(name, "model")
        if alias:
            v.check_pointer(alias, "alias", settable=False)
        size = v.page_size(page_size, self.policy.limits)
        rows = await self.store.alias_history(name, alias or None, size + 1,
                                              v.decode_int_token(page_token), tenant=tenant)
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, v.encode_token(rows[-1].sequence) if more else "")
