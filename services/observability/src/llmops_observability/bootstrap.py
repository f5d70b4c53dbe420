"""Composition root: ClickHouse (connected and migrated first), the writer's consumers, the
panel API and the drift monitor.

The gRPC port opens only after the migrations applied, so nothing reads a half-made schema and
health answers SERVING only once the store is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from clickhouse_connect.driver.client import Client

from llmops.observability.v1 import observability_pb2, observability_pb2_grpc
from llmops_kit import events
from llmops_kit.app import ServiceApp, Stage
from llmops_kit.batch_consumer import relax_gc
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus
from llmops_kit.key_resolver import build_resolver
from llmops_observability import clickhouse, panels
from llmops_observability.adapters.store import ClickHouseStore
from llmops_observability.api import events as event_api
from llmops_observability.api.grpc import ROLES, SERVICE_FULL_NAME, ObservabilityServicer
from llmops_observability.api.mapping import MappingOptions
from llmops_observability.drift import DriftMonitor, DriftSettings
from llmops_observability.ports import PanelCatalog
from llmops_observability.settings import ClickHouseSettings, Settings

log = logging.getLogger(__name__)



def open_store(settings: ClickHouseSettings, ttl_days: dict[str, int]) -> Client:
    """Connects (retrying while a server starts) and applies the migrations and TTLs."""
    path = settings.chdb_path()
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + settings.connect_timeout_seconds
    while True:
        try:
            client = clickhouse.connect(settings.dsn, settings.database, settings.secret())
            break
        except Exception as exc:
            if path is not None or time.monotonic() > deadline:
                raise
            log.warning("ClickHouse not reachable yet (%s); retrying", type(exc).__name__)
            time.sleep(1.0)
    applied = clickhouse.migrate(client, ttl_days)
    log.info("store ready", extra={"migrations_applied": applied, "embedded": path is not None})
    return client


def load_panels() -> PanelCatalog:
    """The panel definitions the API serves."""
    return PanelCatalog(panels.PANELS, panels.run)


Publish = Callable[[observability_pb2.DriftDetected], Awaitable[None]]


def drift_publisher(bus: EventBus) -> Publish:
    async def publish(event: observability_pb2.DriftDetected) -> None:
        await bus.publish(events.DRIFT_DETECTED, event, key=event.envelope.tenant_id.encode())

    return publish


def wire_drift(app: ServiceApp, monitor: DriftMonitor) -> None:
    """Runs the drift monitor beside the consumers; it publishes DriftDetected on the bus, so it
    starts after the bus and stops before it."""
    task: list[asyncio.Task[Any]] = []

    async def start() -> None:
        task.append(asyncio.create_task(monitor.run_forever(), name="drift-monitor"))

    async def stop() -> None:
        for t in task:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        task.clear()

    app.on(Stage.BUS_CLIENT, start=start, stop=stop)


def build_grpc(settings: Settings, catalog: PanelCatalog, client: Client) -> GrpcServer:
    server = GrpcServer(settings.grpc_host, settings.grpc_port, build_resolver(settings))
    server.add(observability_pb2_grpc.add_ObservabilityServiceServicer_to_server,
               ObservabilityServicer(catalog, client), [SERVICE_FULL_NAME], ROLES)
    return server


async def build(settings: Settings) -> ServiceApp:
    client = await asyncio.to_thread(open_store, settings.clickhouse, settings.ttl_days)
    store = ClickHouseStore(client)
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    writer = event_api.Writer(store, MappingOptions(
        weak_retrieval_threshold=settings.weak_retrieval_threshold,
        corpus_sample_rate=settings.corpus_sample_rate))
    topics = event_api.register(bus, writer, settings.consumer_group,
                                settings.batch_max_records, settings.batch_timeout_ms)
    # While ClickHouse is down, failing batches are an outage (retried), never bad records.
    bus.add_health_probe(store.ready)
    app = ServiceApp(settings, bus, build_grpc(settings, load_panels(), client), topics)
    app.on(Stage.RESOURCE, stop=store.close)
    wire_drift(app, DriftMonitor(client, drift_publisher(bus), DriftSettings()))
    return app


async def serve(settings: Settings) -> None:
    app = await build(settings)
    # The process's work is the writer's batches: tens of thousands of short-lived rows.
    relax_gc()
    await app.serve()
