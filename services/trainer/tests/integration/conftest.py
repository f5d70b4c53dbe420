"""A trainer on real sockets for integration tests: gRPC, Kafka (topics of its own), SQLite,
the real model registry in the same process, and the stand-in worker (or the real one).

Helpers are handed to test modules through the `trainer_kit` fixture (conftest modules are
not importable under --import-mode=importlib).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from llmops.registry.v1 import registry_pb2, registry_pb2_grpc
from llmops.trainer.v1 import trainer_pb2, trainer_pb2_grpc
from llmops_datasets import DatasetStore
from llmops_datasets.build import Built
from llmops_kit.events import EventType
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_registry.api.events import RegistryTopics
from llmops_registry.bootstrap import Registry, build_registry
from llmops_registry.bootstrap import build_grpc as build_registry_grpc
from llmops_registry.settings import Settings as RegistrySettings
from llmops_trainer.api.events import BusProgressPublisher, subscribe_job_requests
from llmops_trainer.bootstrap import Trainer, build_grpc, build_trainer
from llmops_trainer.settings import RegistrySettings as TrainerRegistry
from llmops_trainer.settings import Settings, ShippedBase

KEYS = ("dev-key-acme=acme:maintainer,dev-key-globex=globex:maintainer,"
        "dev-member-acme=acme:member")
STANDIN = Path(__file__).resolve().parents[1] / "support" / "standin_worker.py"
DATASET = "ds-00112233aabbccdd"


def md(key: str = "dev-key-acme") -> tuple[tuple[str, str], ...]:
    return (("x-api-key", key),)


def write_dataset(root: Path, tenant: str = "acme", dataset_id: str = DATASET) -> Path:
    """A dataset version written by the real artifact store (llmops_datasets.DatasetStore) under
    a fixed id, without building it (no tokenizer needed); returns its folder."""
    record = {"messages": [{"role": "user", "content": "What is 2+2?"},
                           {"role": "assistant", "content": "4"}]}
    built = Built(id=dataset_id, kind="chat",
                  files={"train.jsonl": [record] * 6, "validation.jsonl": [record]},
                  manifest={"kind": "chat", "counts": {"train": 6, "validation": 1}}, skipped=[])
    version, _ = DatasetStore(root).write(tenant, built, name="arith", created_by="test")
    return version.path


@dataclass
class RegistryUnderTest:
    registry: Registry
    server: GrpcServer
    bus: EventBus
    port: int
    stub: registry_pb2_grpc.ModelRegistryServiceStub
    channel: grpc.aio.Channel

    async def stop(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.registry.relay.stop()
        await self.bus.stop()
        self.registry.engine.dispose()


async def start_registry(tmp: Path, kafka: KafkaSettings) -> RegistryUnderTest:
    run = uuid.uuid4().hex[:10]
    base = f"llmops.test-{run}.registry"
    reg_topics = RegistryTopics(
        EventType(f"{base}.model-version-created.v1", registry_pb2.ModelVersionCreated),
        EventType(f"{base}.alias-changed.v1", registry_pb2.ModelAliasChanged),
        EventType(f"{base}.prompt-version-created.v1", registry_pb2.PromptVersionCreated),
        EventType(f"{base}.prompt-label-changed.v1", registry_pb2.PromptLabelChanged))
    settings = RegistrySettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka,
                                database_url=f"sqlite:///{tmp}/registry.db", api_keys=KEYS,
                                outbox_interval_seconds=0.5)
    bus = EventBus(kafka, client_id="registry-test")
    await ensure_topics(kafka, reg_topics.all(), partitions=1)
    await bus.start()
    registry = await build_registry(settings, bus, reg_topics)
    server = build_registry_grpc(settings, registry)
    port = await server.start()
    registry.relay.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return RegistryUnderTest(registry, server, bus, port,
                             registry_pb2_grpc.ModelRegistryServiceStub(channel), channel)


def trainer_settings(tmp: Path, registry_port: int, kafka: KafkaSettings, run: str,
                     real_worker: bool = False, **overrides: Any) -> Settings:
    base = tmp / "base-model"
    base.mkdir(exist_ok=True)
    values: dict[str, Any] = dict(
        grpc_host="127.0.0.1", grpc_port=0, kafka=kafka, api_keys=KEYS,
        database_url=f"sqlite:///{tmp}/trainer.db", jobs_root=tmp / "jobs",
        datasets_root=str(tmp / "datasets"), replica_id=f"replica-{run}",
        lease_seconds=5, poll_seconds=0.2,
        registry=TrainerRegistry(address=f"127.0.0.1:{registry_port}"),
        base_models={"smollm2-135m-instruct": ShippedBase(path=base)},
        consumer_group=f"trainer-test-{run}",
        job_requested_topic=f"llmops.test-{run}.trainer.job-requested.v1",
        progress_topic=f"llmops.test-{run}.trainer.progress.v1",
        code_version="test-1")
    if not real_worker:
        values["worker_command"] = [sys.executable, str(STANDIN), "--job-dir", "{job_dir}"]
    values.update(overrides)
    return Settings(**values)


@dataclass
class TrainerUnderTest:
    settings: Settings
    trainer: Trainer
    server: GrpcServer
    bus: EventBus
    channel: grpc.aio.Channel
    stub: trainer_pb2_grpc.TrainerServiceStub
    progress: EventType[trainer_pb2.TrainingProgress]
    requested: EventType[trainer_pb2.TrainingJobRequested]

    async def stop(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.trainer.runner.stop()
        await self.bus.stop()
        self.trainer.store.engine.dispose()


async def start_trainer(settings: Settings, kafka: KafkaSettings,
                        validator: Any = None) -> TrainerUnderTest:
    progress = EventType(settings.progress_topic, trainer_pb2.TrainingProgress)
    requested = EventType(settings.job_requested_topic, trainer_pb2.TrainingJobRequested)
    await ensure_topics(kafka, [progress.topic, requested.topic],
                        partitions=1)
    bus = EventBus(kafka, client_id="trainer-test")
    trainer = build_trainer(settings, BusProgressPublisher(bus, progress), validator)
    subscribe_job_requests(bus, trainer.jobs, settings.consumer_group, requested)
    await bus.start()
    server = build_grpc(settings, trainer, with_datasets=False)
    port = await server.start()
    trainer.runner.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return TrainerUnderTest(settings, trainer, server, bus, channel,
                            trainer_pb2_grpc.TrainerServiceStub(channel), progress, requested)


@pytest.fixture(scope="session")
def trainer_kit() -> Any:
    class Kit:
        md = staticmethod(md)
        write_dataset = staticmethod(write_dataset)
        start_registry = staticmethod(start_registry)
        settings = staticmethod(trainer_settings)
        start = staticmethod(start_trainer)
        dataset = DATASET
        standin = STANDIN

    return Kit


@pytest.fixture
async def registry(tmp_path: Path, kafka: KafkaSettings) -> AsyncIterator[RegistryUnderTest]:
    reg = await start_registry(tmp_path, kafka)
    try:
        yield reg
    finally:
        try:
            # Bounded: a registry client that hangs on the shared broker while stopping must
            # not turn a passed test into a timeout (the registry's own tests cover stopping).
            await asyncio.wait_for(reg.stop(), 60)
        except TimeoutError:
            logging.getLogger(__name__).warning("the test registry did not stop within 60 s")
