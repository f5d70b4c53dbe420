"""Interfaces the registry's use cases need; adapters implement them.

Every write of the store also records its event in the outbox, in the same transaction, so an
acknowledged change is never without its event (the relay publishes it afterwards).

Scopes: a write takes the `scope` it writes (SHARED, or one tenant); a version it points at or
derives from must be visible to that scope. A read takes the `tenant` it is made for: it sees
shared versions and that tenant's own, and a pointer name resolves to the tenant's own pointer if
there is one, else the shared one. Another tenant's versions are reported as missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from llmops_registry.domain.evaluation_model import EvaluationRun, NewEvaluationRun
from llmops_registry.domain.model import (
    SHARED,
    Actor,
    ModelVersion,
    NewModelVersion,
    NewPromptVersion,
    OutboxEntry,
    PointerChange,
    PointerMove,
    PromptVersion,
    Summary,
)


class ModelStore(Protocol):
    async def create_model_version(
        self, new: NewModelVersion, actor: Actor, aliases: Sequence[str] = (),
        *, scope: str = SHARED, only_if_absent: bool = False,
    ) -> ModelVersion | None:
        """Stores the model's next version (1 for a new model) and points `aliases` at it.

        PARENT_NOT_FOUND if the lineage names a version that does not exist. With
        only_if_absent, does nothing (returns None) when the model already has versions:
        how the shipped base model is seeded exactly once, even by replicas starting together.
        """
        ...

    async def get_model_version(
        self, name: str, version: int | None = None, alias: str | None = None,
        *, tenant: str = SHARED,
    ) -> ModelVersion:
        """By number, by alias (`latest`: the newest), or the newest when neither is given.

        MODEL_NOT_FOUND, VERSION_NOT_FOUND, ALIAS_NOT_FOUND.
        """
        ...

    async def list_model_versions(
        self, name: str, limit: int, before_version: int | None = None, *, tenant: str = SHARED,
    ) -> list[ModelVersion]:
        """Newest first; MODEL_NOT_FOUND for an unknown model."""
        ...

    async def list_models(self, limit: int, after_name: str | None = None,
                          *, tenant: str = SHARED) -> list[Summary]: ...

    async def set_alias(
        self, name: str, alias: str, version: int, reason: str, actor: Actor,
        *, scope: str = SHARED,
    ) -> PointerMove:
        """No-op (changed=False, nothing recorded) when the alias already points there."""
        ...

    async def delete_alias(self, name: str, alias: str, reason: str, actor: Actor,
                           *, scope: str = SHARED) -> int:
        """Returns the version it pointed at; ALIAS_NOT_FOUND if `scope` has no such alias."""
        ...

    async def alias_history(
        self, name: str, alias: str | None, limit: int, before_sequence: int | None = None,
        *, tenant: str = SHARED,
    ) -> list[PointerChange]:
        """Newest first: changes of the shared aliases and of `tenant`'s own."""
        ...


class PromptStore(Protocol):
    async def create_prompt_version(
        self, new: NewPromptVersion, actor: Actor, labels: Sequence[str] = (),
        *, scope: str = SHARED, only_if_absent: bool = False,
    ) -> PromptVersion | None:
        """Stores the next version, moves `scope`'s `latest` and `labels` to it (each move in
        history)."""
        ...

    async def get_prompt_version(
        self, name: str, version: int | None = None, label: str | None = None,
        *, tenant: str = SHARED,
    ) -> PromptVersion:
        """PROMPT_NOT_FOUND, PROMPT_VERSION_NOT_FOUND, LABEL_NOT_FOUND."""
        ...

    async def list_prompt_versions(
        self, name: str, limit: int, before_version: int | None = None, *, tenant: str = SHARED,
    ) -> list[PromptVersion]: ...

    async def list_prompts(self, limit: int, after_name: str | None = None,
                           *, tenant: str = SHARED) -> list[Summary]: ...

    async def set_prompt_label(
        self, name: str, label: str, version: int, reason: str, actor: Actor,
        *, scope: str = SHARED,
    ) -> PointerMove: ...

    async def label_history(
        self, name: str, label: str | None, limit: int, before_sequence: int | None = None,
        *, tenant: str = SHARED,
    ) -> list[PointerChange]: ...


class EvaluationStore(Protocol):
    """Evaluation runs, each owned by the tenant that recorded it (other tenants never see it)."""

    async def record_evaluation_run(self, new: NewEvaluationRun, actor: Actor) -> EvaluationRun:
        """Stores the run (totals computed from its results) in the actor's tenant, with its
        EvaluationCompleted event in the outbox."""
        ...

    async def get_evaluation_run(self, run_id: str, *, tenant: str) -> EvaluationRun:
        """With its results; EVALUATION_RUN_NOT_FOUND (also for another tenant's run)."""
        ...

    async def list_evaluation_runs(
        self, tenant: str, model_name: str = "", model_version: int = 0, dataset: str = "",
        limit: int = 50, before_sequence: int | None = None,
    ) -> list[EvaluationRun]:
        """Newest first, without results; empty filters match any."""
        ...


class Outbox(Protocol):
    async def pending_events(self, limit: int) -> list[OutboxEntry]:
        """Unpublished events, oldest first, with what they announce loaded."""
        ...

    async def mark_published(self, ids: Sequence[int]) -> None: ...

    async def mark_failed(self, entry_id: int, error: str) -> None: ...


class RegistryStore(ModelStore, PromptStore, Outbox, Protocol):
    pass


class EventPublisher(Protocol):
    async def publish(self, entry: OutboxEntry) -> None:
        """Publishes one event and returns once the bus acknowledged it."""
        ...


class TenantData(Protocol):
    async def delete_tenant_data(self, tenant: str) -> int:
        """Removes what the registry keeps *of* one tenant (TenantDeleted calls it); returns
        how many rows were removed or detached. Models and prompts are shared by all tenants
        and stay; tenant-scoped rows (e.g. tenant aliases) must be deleted here."""
        ...
