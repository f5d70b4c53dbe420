"""Model use cases: register versions, read them, move aliases; every write is published."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmops_registry.domain import validation as v
from llmops_registry.domain.errors import WriteNotAllowed
from llmops_registry.domain.model import (
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
    # Tenants allowed to write (register, move aliases/labels, create prompts); empty: all.
    write_tenants: frozenset[str] = frozenset()
    limits: v.Limits = field(default_factory=v.Limits)

    def check_write(self, actor: Actor) -> None:
        if self.write_tenants and actor.tenant not in self.write_tenants:
            raise WriteNotAllowed("WRITE_NOT_ALLOWED",
                                  f"tenant {actor.tenant!r} may read the registry but not change it")


class ModelRegistry:
    def __init__(self, store: ModelStore, relay: OutboxRelay, policy: Policy) -> None:
        self.store = store
        self.relay = relay
        self.policy = policy

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

    async def register(self, actor: Actor, new: NewModelVersion) -> ModelVersion:
        self.policy.check_write(actor)
        created = await self.store.create_model_version(new, actor)
        if created is None:  # only seeding asks for only_if_absent
            raise RuntimeError("store skipped a registration it was not asked to skip")
        await self.relay.flush()
        return created

    async def seed(self, actor: Actor, new: NewModelVersion, alias: str) -> ModelVersion | None:
        """Registers `new` with `alias` unless the model has versions already (idempotent)."""
        return await self.store.create_model_version(
            new, actor, [v.check_pointer(alias, "alias", settable=True)], only_if_absent=True
        )

    async def get(self, name: str, version: int | None = None,
                  alias: str | None = None) -> ModelVersion:
        v.check_name(name, "model")
        if version is not None:
            v.check_version(version)
        if alias is not None:
            v.check_pointer(alias, "alias", settable=False)
        return await self.store.get_model_version(name, version, alias)

    async def list_versions(self, name: str, page_size: int = 0,
                            page_token: str = "") -> Page[ModelVersion]:
        v.check_name(name, "model")
        size = v.page_size(page_size, self.policy.limits)
        before = v.decode_int_token(page_token)
        rows = await self.store.list_model_versions(name, size + 1, before)
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, v.encode_token(rows[-1].version) if more else "")

    async def list_models(self, page_size: int = 0, page_token: str = "") -> Page[Summary]:
        size = v.page_size(page_size, self.policy.limits)
        rows = await self.store.list_models(size + 1, v.decode_str_token(page_token))
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, v.encode_token(rows[-1].name) if more else "")

    async def set_alias(self, actor: Actor, name: str, alias: str, version: int,
                        reason: str = "") -> PointerMove:
        self.policy.check_write(actor)
        v.check_name(name, "model")
        v.check_pointer(alias, "alias", settable=True)
        v.check_version(version)
        v.check_text(reason, "reason", v.MAX_REASON)
        move = await self.store.set_alias(name, alias, version, reason, actor)
        if move.changed:
            await self.relay.flush()
        return move

    async def delete_alias(self, actor: Actor, name: str, alias: str, reason: str = "") -> int:
        self.policy.check_write(actor)
        v.check_name(name, "model")
        v.check_pointer(alias, "alias", settable=True)
        v.check_text(reason, "reason", v.MAX_REASON)
        previous = await self.store.delete_alias(name, alias, reason, actor)
        await self.relay.flush()
        return previous

    async def alias_history(self, name: str, alias: str = "", page_size: int = 0,
                            page_token: str = "") -> Page[PointerChange]:
        v.check_name(name, "model")
        if alias:
            v.check_pointer(alias, "alias", settable=False)
        size = v.page_size(page_size, self.policy.limits)
        rows = await self.store.alias_history(name, alias or None, size + 1,
                                              v.decode_int_token(page_token))
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, v.encode_token(rows[-1].sequence) if more else "")
