"""Composition root: builds the store, relay and use cases from settings and wires gRPC."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from llmops.registry.v1 import registry_pb2_grpc
from llmops_kit import topics
from llmops_kit.app import ServiceApp
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus
from llmops_registry.adapters.sql_schema import create_schema, make_engine
from llmops_registry.adapters.sql_store import SqlRegistryStore
from llmops_registry.adapters.sql_tenants import SqlTenantData
from llmops_registry.api import tenants as tenant_api
from llmops_registry.api.events import BusEventPublisher, RegistryTopics
from llmops_registry.api.grpc import SERVICE_NAME, RegistryServicer
from llmops_registry.domain.model import Actor
from llmops_registry.domain.models import ModelRegistry, Policy
from llmops_registry.domain.outbox import OutboxRelay
from llmops_registry.domain.prompts import PromptRegistry
from llmops_registry.domain.seed import SeedModel, seed
from llmops_registry.domain.validation import Limits
from llmops_registry.settings import Settings


@dataclass
class Registry:
    """Everything a running registry is made of (tests drive the parts directly)."""

    engine: Engine
    store: SqlRegistryStore
    relay: OutboxRelay
    models: ModelRegistry
    prompts: PromptRegistry


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def policy(settings: Settings) -> Policy:
    return Policy(
        formats=tuple(settings.formats),
        write_tenants=frozenset(settings.write_tenants),
        limits=Limits(settings.default_page_size, settings.max_page_size,
                      settings.max_template_chars),
    )


async def build_registry(settings: Settings, bus: EventBus,
                         event_topics: RegistryTopics | None = None) -> Registry:
    """Opens the database (schema created if missing) and seeds what a fresh registry ships."""
    _ensure_sqlite_dir(settings.database_url)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    store = SqlRegistryStore(engine)
    relay = OutboxRelay(store, BusEventPublisher(bus, event_topics),
                        flush_timeout=settings.publish_timeout_seconds,
                        interval=settings.outbox_interval_seconds)
    rules = policy(settings)
    registry = Registry(engine, store, relay, ModelRegistry(store, relay, rules),
                        PromptRegistry(store, relay, rules))
    sm = settings.seed_model
    await seed(registry.models, registry.prompts, Actor(settings.system_actor),
               SeedModel(sm.name, sm.artifact_uri, sm.base_model, sm.format, sm.alias)
               if sm.enabled else None,
               settings.seed_rag_prompt)
    return registry


@dataclass
class RegistryApp(ServiceApp):
    """ServiceApp plus the outbox relay, which needs the bus up and stops before it."""

    relay: OutboxRelay = field(kw_only=True)

    async def start(self) -> None:
        await super().start()
        self.relay.start()

    async def stop(self) -> None:
        await self.relay.stop()
        await super().stop()


def build_grpc(settings: Settings, registry: Registry) -> GrpcServer:
    server = GrpcServer(settings.grpc_host, settings.grpc_port, settings.api_key_map())
    server.add(registry_pb2_grpc.add_ModelRegistryServiceServicer_to_server,
               RegistryServicer(registry.models, registry.prompts), [SERVICE_NAME])
    return server


async def build(settings: Settings) -> RegistryApp:
    """Must run inside the event loop: grpc.aio binds its server to the running loop."""
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    registry = await build_registry(settings, bus)
    tenant_api.register(bus, SqlTenantData(registry.engine))
    app = RegistryApp(settings, bus, build_grpc(settings, registry), topics.ALL,
                      relay=registry.relay)

    async def dispose() -> None:
        registry.engine.dispose()

    app.closers.append(dispose)
    return app


async def serve(settings: Settings) -> None:
    await (await build(settings)).serve()
