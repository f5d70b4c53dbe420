"""What the registry stores: plain, immutable values (no protobuf, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from llmops_registry.domain.evaluation_model import EvaluationCompletedEvent

T = TypeVar("T")

LATEST = "latest"        # models: the newest version (virtual); prompts: a label the registry moves
PRODUCTION = "production"
# The scope of platform-wide versions and pointers; any other scope is one tenant's id.
SHARED = ""


@dataclass(frozen=True)
class Actor:
    """Who makes a change: the tenant of the caller's API key, the key's public id (for the
    audit log, never the secret) and the request's trace id."""

    tenant: str
    trace_id: str = ""
    key_id: str = ""


@dataclass(frozen=True)
class Lineage:
    parent_name: str = ""
    parent_version: int = 0
    training_job_id: str = ""
    dataset_uri: str = ""


@dataclass(frozen=True)
class NewModelVersion:
    """A validated registration request; the store assigns the version number."""

    name: str
    artifact_uri: str
    base_model: str = ""
    format: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    lineage: Lineage = field(default_factory=Lineage)


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    artifact_uri: str
    base_model: str
    format: str
    metadata: dict[str, str]
    lineage: Lineage
    aliases: tuple[str, ...]
    created_at: datetime
    created_by: str
    tenant: str = SHARED  # owner: SHARED, or the only tenant that sees it


@dataclass(frozen=True)
class NewPromptVersion:
    name: str
    template: str
    variables: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class PromptVersion:
    name: str
    version: int
    template: str
    variables: tuple[str, ...]
    labels: tuple[str, ...]
    description: str
    created_at: datetime
    created_by: str
    tenant: str = SHARED


@dataclass(frozen=True)
class PointerChange:
    """One move of a model alias or a prompt label; from 0 = created, to 0 = deleted."""

    pointer: str
    from_version: int
    to_version: int
    actor: str
    reason: str
    changed_at: datetime
    sequence: int
    tenant: str = SHARED  # scope of the pointer: SHARED, or the tenant whose own pointer it is


@dataclass(frozen=True)
class PointerMove:
    """Result of setting or deleting an alias/label."""

    previous_version: int
    version: int
    changed: bool


@dataclass(frozen=True)
class Summary:
    """A model or prompt: its newest version and where its aliases/labels point."""

    name: str
    latest_version: int
    pointers: dict[str, int]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str = ""


# Events, recorded in the outbox in the same transaction as the change they announce.

@dataclass(frozen=True)
class ModelVersionCreatedEvent:
    version: ModelVersion


@dataclass(frozen=True)
class ModelAliasChangedEvent:
    name: str
    change: PointerChange
    target: ModelVersion | None  # None when the alias was deleted


@dataclass(frozen=True)
class PromptVersionCreatedEvent:
    version: PromptVersion


@dataclass(frozen=True)
class PromptLabelChangedEvent:
    name: str
    change: PointerChange
    target: PromptVersion | None


RegistryEvent = (
    ModelVersionCreatedEvent | ModelAliasChangedEvent | PromptVersionCreatedEvent
    | PromptLabelChangedEvent | EvaluationCompletedEvent
)


@dataclass(frozen=True)
class OutboxEntry:
    """An event not yet acknowledged by the bus, with the envelope facts fixed at write time."""

    id: int
    event_id: str
    tenant: str
    trace_id: str
    occurred_at: datetime
    attempts: int
    event: RegistryEvent
