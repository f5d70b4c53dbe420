"""Composition root: builds the job store, launcher, registry client and use cases from
settings, and wires gRPC, the Kafka consumer and the job runner."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from llmops.trainer.v1 import datasets_pb2, trainer_pb2, trainer_pb2_grpc
from llmops_kit import events, topics
from llmops_kit.app import ServiceApp, Stage
from llmops_kit.context import current_api_key
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus
from llmops_kit.key_resolver import build_resolver
from llmops_kit.sql_auth import SqlKeyStore, open_engine
from llmops_trainer import datasets
from llmops_trainer.adapters.datasets import StoreCatalog
from llmops_trainer.adapters.process import ProcessLauncher, template_command
from llmops_trainer.adapters.registry import KeyMinter, KnownBaseModels, RegistryClient
from llmops_trainer.adapters.sql_store import SqlJobStore
from llmops_trainer.api import tenants as tenant_api
from llmops_trainer.api.events import BusProgressPublisher, subscribe_job_requests
from llmops_trainer.api.grpc import ROLES, SERVICE_NAME, TrainerServicer
from llmops_trainer.domain.jobs import Jobs
from llmops_trainer.domain.runner import JobRunner, RunnerConfig
from llmops_trainer.domain.tenants import DatasetEraser, EraseConfig, TenantTraining
from llmops_trainer.pipeline.store import SqlLoopStore
from llmops_trainer.pipeline.wiring import build_continuous
from llmops_trainer.ports import ProgressPublisher, SpecValidator
from llmops_trainer.settings import Settings
from llmops_trainer.worker import config

log = logging.getLogger(__name__)


def code_version(settings: Settings) -> str:
    """The configured code version, else the package's version and the git commit if known."""
    if settings.code_version:
        return settings.code_version
    version = f"llmops-trainer {metadata.version('llmops-trainer')}"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=5, cwd=Path(__file__).parent, check=False)
    except OSError:
        return version
    return f"{version} ({commit.stdout.strip()})" if commit.returncode == 0 else version


@dataclass
class Trainer:
    """Everything a running trainer is made of (tests drive the parts directly)."""

    store: SqlJobStore
    jobs: Jobs
    runner: JobRunner
    registry: RegistryClient
    platform: Any


def build_trainer(settings: Settings, publisher: ProgressPublisher,
                  validator: SpecValidator | None = None, catalog: Any = None) -> Trainer:
    store = SqlJobStore.open(settings.database_url)
    platform = open_engine(settings.auth_database_url)
    key = settings.registry.api_key
    registry = RegistryClient(settings.registry.address, settings.registry.timeout_seconds,
                              KeyMinter(SqlKeyStore(platform)),
                              key.get_secret_value() if key else None)
    shipped = {name: (base.path, base.registry_version)
               for name, base in settings.base_models.items()}
    jobs = Jobs(store, catalog or StoreCatalog(settings.datasets_root),
                KnownBaseModels(shipped, registry, current_api_key),
                validator or config.validate, publisher, settings.defaults)
    command = template_command(settings.worker_command) if settings.worker_command else None
    runner = JobRunner(store, ProcessLauncher(command, settings.worker_threads), registry,
                       publisher, RunnerConfig(
                           jobs_root=settings.jobs_root, owner=settings.replica_id,
                           lease_seconds=settings.lease_seconds,
                           poll_seconds=settings.poll_seconds,
                           cancel_grace_seconds=settings.cancel_grace_seconds,
                           max_attempts=settings.max_attempts,
                           code_version=code_version(settings)))
    return Trainer(store, jobs, runner, registry, platform)


def add_dataset_service(server: GrpcServer, trainer: Trainer,
                        bus: EventBus | None = None) -> datasets.DatasetServicer:
    """Hosts DatasetService (dataset versions, catalogued in the trainer's database) next to
    TrainerService; with a bus, every new version is announced (DatasetVersionCreated)."""
    created = events.EventType(datasets.DATASET_CREATED_TOPIC, datasets_pb2.DatasetVersionCreated)

    async def announce(entry: Any) -> None:
        if bus is not None:
            await bus.publish(created, datasets.dataset_created_event(entry), entry.tenant.encode())

    servicer = datasets.build_dataset_service(datasets.DatasetSettings(), trainer.store.engine,
                                              on_created=announce)
    datasets.register(server, servicer)
    return servicer


def tenant_eraser(settings: Settings, trainer: Trainer,
                  datasets: DatasetEraser | None) -> TenantTraining:
    """TenantDeleted's eraser: waits for running jobs as long as a cancel can take (the
    grace before the worker is killed, plus a lease for a replica that died meanwhile)."""
    wait = settings.cancel_grace_seconds + settings.lease_seconds + 5 * settings.poll_seconds
    return TenantTraining(trainer.jobs, datasets, EraseConfig(
        settings.jobs_root, wait_seconds=wait, poll_seconds=settings.poll_seconds),
        loops=SqlLoopStore(trainer.store.engine))


def build_grpc(settings: Settings, trainer: Trainer, with_datasets: bool = True,
               bus: EventBus | None = None) -> GrpcServer:
    resolver = build_resolver(settings, SqlKeyStore(trainer.platform))
    server = GrpcServer(settings.grpc_host, settings.grpc_port, resolver)
    server.add(trainer_pb2_grpc.add_TrainerServiceServicer_to_server,
               TrainerServicer(trainer.jobs), [SERVICE_NAME], ROLES)
    if with_datasets:
        add_dataset_service(server, trainer, bus)
    return server


async def build(settings: Settings) -> ServiceApp:
    """Must run inside the event loop: grpc.aio binds its server to the running loop."""
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    progress = events.EventType(settings.progress_topic, trainer_pb2.TrainingProgress)
    requested = events.EventType(settings.job_requested_topic, trainer_pb2.TrainingJobRequested)
    trainer = build_trainer(settings, BusProgressPublisher(bus, progress))
    subscribe_job_requests(bus, trainer.jobs, settings.consumer_group, requested)
    names = sorted({*topics.ALL, progress.topic, requested.topic, datasets.DATASET_CREATED_TOPIC})
    server = build_grpc(settings, trainer, with_datasets=False)
    dataset_servicer = add_dataset_service(server, trainer, bus)
    tenant_api.register(bus, tenant_eraser(settings, trainer, dataset_servicer.service))
    app = ServiceApp(settings, bus, server, names)

    async def start_runner() -> None:
        if settings.run_jobs:
            trainer.runner.start()

    async def dispose() -> None:
        await trainer.registry.close()
        await asyncio.to_thread(trainer.store.engine.dispose)
        await asyncio.to_thread(trainer.platform.dispose)

    app.on(Stage.RESOURCE, stop=dispose)
    # The runner publishes progress: after the bus is up, stopped before it.
    app.on(Stage.BUS_CLIENT, start=start_runner, stop=trainer.runner.stop)
    if settings.continuous.any_enabled and settings.run_jobs:
        continuous = build_continuous(settings, trainer, bus)
        app.on(Stage.BUS_CLIENT, start=continuous.start, stop=continuous.stop)
    return app


async def serve(settings: Settings) -> None:
    await (await build(settings)).serve()
