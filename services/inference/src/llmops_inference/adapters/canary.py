"""ModelResolver with the tenants' canaries: resolves `production` as before, then lets the
tenant's progressing canary (RolloutService.GetCanary) take its share of the requests.

Canaries are cached per (tenant) like alias resolutions and invalidated by the same
ModelAliasChanged events (every canary step is one, on alias `canary`), so a share change, a
promotion or a rollback reaches every replica at once; the TTL bounds staleness if an event is
missed. A registry that cannot say whether there is a canary leaves the request on production
(never a failed request for a canary lookup). Requests made inside `bound_session(id)` are
sticky per session (domain/canary.session_draw); the others draw per request.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import grpc

from llmops.registry.v1 import rollout_pb2, rollout_pb2_grpc
from llmops_inference.adapters.registry import RegistryClient, model_ref
from llmops_inference.domain.canary import CanaryRoute, current_session, route, session_draw
from llmops_inference.domain.model import ModelRef
from llmops_kit.context import current_tenant
from llmops_kit.errors import DomainError, NotFound
from llmops_kit.grpc_client import call_peer

log = logging.getLogger(__name__)


def canary_id(canary: rollout_pb2.Canary) -> str:
    """One start of one candidate: a canary started again reshuffles the sessions."""
    started = canary.started_at
    return f"{canary.name}@{canary.candidate_version}/{started.seconds}.{started.nanos:09d}"


class CanaryResolver:
    def __init__(self, registry: RegistryClient, production_alias: str = "production",
                 ttl_seconds: float = 30.0, draw: Callable[[], float] = random.random) -> None:
        self.registry = registry
        self.stub = rollout_pb2_grpc.RolloutServiceStub(registry.channel)
        self.production_alias = production_alias
        self.ttl = ttl_seconds
        self.draw = draw
        self._routes: dict[str, tuple[float, CanaryRoute | None]] = {}

    async def resolve_version(self, version: int) -> ModelRef:
        # A pinned version (evaluation runs) bypasses the canary.
        return await self.registry.resolve_version(version)

    async def resolve(self, alias: str) -> ModelRef:
        production = await self.registry.resolve(alias)
        if alias != self.production_alias:
            return production
        tenant = current_tenant() or ""
        canary = await self._route(tenant)
        session = current_session()
        draw = session_draw(tenant, session, canary.canary_id) if canary and session \
            else self.draw()
        return route(production, canary, draw)

    async def _route(self, tenant: str) -> CanaryRoute | None:
        cached = self._routes.get(tenant)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        found: CanaryRoute | None = None
        try:
            canary = await call_peer(
                self.stub.GetCanary, rollout_pb2.GetCanaryRequest(name=self.registry.model_name),
                peer=f"registry (canary of {self.registry.model_name})",
                timeout=self.registry.timeout, unavailable="REGISTRY_UNAVAILABLE")
            if canary.state == rollout_pb2.CANARY_STATE_PROGRESSING and canary.share > 0:
                found = CanaryRoute(canary.share, model_ref(canary.candidate), canary_id(canary))
        except NotFound:
            found = None
        except DomainError as exc:
            # Production serves; the lookup is retried on the next request.
            log.warning("canary lookup failed, serving production: %s", exc.reason)
            return None
        except grpc.aio.AioRpcError as exc:  # pragma: no cover - call_peer maps these
            log.warning("canary lookup failed, serving production: %s", exc.code().name)
            return None
        self._routes[tenant] = (time.monotonic(), found)
        return found

    def invalidate(self, model_name: str | None = None, tenant: str | None = None) -> None:
        self.registry.invalidate(model_name, tenant)
        if model_name is not None and model_name != self.registry.model_name:
            return
        if tenant is None:
            self._routes.clear()
        else:
            self._routes.pop(tenant, None)

    async def close(self) -> None:
        await self.registry.close()
