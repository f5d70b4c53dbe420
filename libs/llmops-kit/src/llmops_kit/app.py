"""The lifecycle every service shares: topics, bus, gRPC up; then down in the right order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.runner import run_until_signalled
from llmops_kit.settings import ServiceSettings


@dataclass
class ServiceApp:
    settings: ServiceSettings
    bus: EventBus
    grpc: GrpcServer
    topics: Sequence[str]
    # Released after gRPC and the bus stopped (model handles, database clients...).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def start(self) -> None:
        # Keys first: a service that could never authenticate anyone refuses to start before
        # it joins any consumer group.
        await self.grpc.start_auth()
        await ensure_topics(self.settings.kafka, self.topics)
        # The bus first: gRPC handlers may publish as soon as the port is open.
        await self.bus.start()
        await self.grpc.start()

    async def stop(self) -> None:
        # gRPC first (readiness off, in-flight calls drain), then consumers commit and leave.
        await self.grpc.stop(self.settings.grpc_grace_seconds)
        await self.bus.stop()
        for close in self.closers:
            await close()

    async def serve(self) -> None:
        await run_until_signalled(self.start, self.stop)
