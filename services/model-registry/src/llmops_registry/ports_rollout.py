"""Interfaces the rollout use cases and the canary controller need; adapters implement them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from llmops_registry.domain.canary import Canary, CanarySpec, VersionMetrics
from llmops_registry.domain.model import Actor, PointerChange


class CanaryStore(Protocol):
    async def start_canary(self, tenant: str, name: str, spec: CanarySpec, reason: str,
                           actor: Actor) -> Canary:
        """Stores a progressing canary of `spec.candidate` against the tenant's production
        version and points the tenant's `canary` alias at the candidate (history + event).
        ALIAS_NOT_FOUND (no production), VERSION_NOT_FOUND, SAME_VERSION, CANARY_IN_PROGRESS."""
        ...

    async def get_canary(self, tenant: str, name: str) -> Canary:
        """The tenant's newest canary of `name`; CANARY_NOT_FOUND."""
        ...

    async def save_step(self, canary: Canary, reason: str, actor: Actor,
                        note: bool) -> Canary | None:
        """Writes `canary` (the state after a step) if the stored one is still progressing
        (None otherwise: it was stopped meanwhile). With `note`, the step lands in the
        `canary` alias' history with `reason`. A canary that is no longer progressing releases
        the `canary` alias; PROMOTED moves the tenant's `production` to the candidate,
        ROLLED_BACK and ABORTED make sure it points at `last_good`."""
        ...

    async def roll_back_promotion(self, canary: Canary, reason: str, actor: Actor) -> Canary:
        """A promoted canary: the tenant's `production` back to its last good version."""
        ...

    async def roll_back_alias(self, tenant: str, name: str, reason: str,
                              actor: Actor) -> tuple[int, int]:
        """Without a canary: the tenant's `production` back to where its last change moved it
        from; (from, to). NOTHING_TO_ROLL_BACK."""
        ...

    async def due_canaries(self, now: datetime, limit: int) -> list[Canary]:
        """Progressing canaries whose next check is due, oldest first."""
        ...

    async def rollout_history(self, tenant: str, name: str, limit: int,
                              before_sequence: int | None) -> list[PointerChange]:
        """Changes of `production` and `canary` as `tenant` sees them, newest first."""
        ...


class Lease(Protocol):
    async def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """True when `holder` holds lease `name` for the next ttl_seconds (taken over when
        free or expired, renewed when already held)."""
        ...


class CanaryMetrics(Protocol):
    async def window(self, tenant: str, name: str, since: datetime,
                     until: datetime) -> dict[int, VersionMetrics]:
        """Per version number of model `name`, its answers for `tenant` in [since, until)."""
        ...


@dataclass(frozen=True)
class GateResult:
    allowed: bool
    reason: str
    details: dict[str, float] = field(default_factory=dict)


class PromotionGate(Protocol):
    async def check(self, tenant: str, name: str, candidate: int,
                    production: int | None) -> GateResult: ...
