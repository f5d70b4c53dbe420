"""The lifecycle every service shares: topics, bus, gRPC up; then down in the right order.

A service adds its own start/stop work in one place, `ServiceApp.on(stage, start=, stop=)`:

  start: topics -> RESOURCE starts -> bus -> BUS_CLIENT starts -> gRPC
  stop:  gRPC -> BUS_CLIENT stops (reverse order) -> bus -> RESOURCE stops (reverse order)

RESOURCE is what the consumers use (database engines, model and HTTP clients), so it outlives
the bus; BUS_CLIENT is what publishes on the bus (an outbox relay, a background publisher),
so it starts after the bus and is drained before the bus stops.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.runner import run_until_signalled
from llmops_kit.settings import ServiceSettings

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[None]]


class Stage(enum.Enum):
    RESOURCE = "resource"
    BUS_CLIENT = "bus-client"


@dataclass(frozen=True)
class Hook:
    stage: Stage
    start: Step | None = None
    stop: Step | None = None


@dataclass
class ServiceApp:
    settings: ServiceSettings
    bus: EventBus
    grpc: GrpcServer
    topics: Sequence[str]
    hooks: list[Hook] = field(default_factory=list)
    _stopping: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.bus.on_health_change(self._consumers_health)

    def on(self, stage: Stage, *, start: Step | None = None, stop: Step | None = None) -> None:
        """Extra start and/or stop work of the service, at `stage` (see module doc)."""
        self.hooks.append(Hook(stage, start, stop))

    def _hooks(self, stage: Stage) -> list[Hook]:
        return [h for h in self.hooks if h.stage is stage]

    async def start(self) -> None:
        self._stopping = False
        # Keys first: a service that could never authenticate anyone refuses to start before
        # it joins any consumer group.
        await self.grpc.start_auth()
        await ensure_topics(self.settings.kafka, self.topics)
        for hook in self._hooks(Stage.RESOURCE):
            if hook.start:
                await hook.start()
        # The bus before gRPC: handlers may publish as soon as the port is open.
        await self.bus.start()
        for hook in self._hooks(Stage.BUS_CLIENT):
            if hook.start:
                await hook.start()
        await self.grpc.start()
        if not self.bus.healthy:
            await self.grpc.set_serving(False)

    async def stop(self) -> None:
        self._stopping = True
        # gRPC first (readiness off, in-flight calls drain), then consumers commit and leave.
        await self.grpc.stop(self.settings.grpc_grace_seconds)
        await self._stop_all(Stage.BUS_CLIENT)
        await self.bus.stop()
        await self._stop_all(Stage.RESOURCE)

    async def _stop_all(self, stage: Stage) -> None:
        for hook in reversed(self._hooks(stage)):
            if hook.stop is None:
                continue
            try:
                await hook.stop()
            except Exception:  # the rest still get their turn to release what they hold
                log.exception("stop step %s failed", getattr(hook.stop, "__qualname__", hook.stop))

    async def _consumers_health(self, healthy: bool) -> None:
        # While a consumer retries through an outage, the service is not ready (NOT_SERVING);
        # once stopping, readiness stays off whatever the consumers report.
        if not self._stopping and self.grpc.port is not None:
            await self.grpc.set_serving(healthy)

    async def serve(self) -> None:
        deadline = self.settings.shutdown_timeout_seconds
        await run_until_signalled(self.start, self.stop, stop_timeout=deadline if deadline > 0 else None)
