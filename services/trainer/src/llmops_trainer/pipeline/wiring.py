"""Builds continuous training from the trainer's settings and parts (bootstrap.py calls it)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmops_kit.kafka import EventBus
from llmops_kit.sql_auth import SqlAuditLog, SqlKeyStore
from llmops_trainer.adapters.registry import KeyMinter
from llmops_trainer.datasets import DATASET_CREATED_TOPIC
from llmops_trainer.datasets.catalogue import SqlCatalogue
from llmops_trainer.datasets.catalogue import create_schema as create_catalogue
from llmops_trainer.pipeline.clients import CatalogueIndex, GrpcEvaluator, GrpcRollout
from llmops_trainer.pipeline.events import BusStepSink, subscribe_triggers
from llmops_trainer.pipeline.keys import TenantKeys
from llmops_trainer.pipeline.loop import Pipeline
from llmops_trainer.pipeline.store import SqlLoopStore

if TYPE_CHECKING:
    from llmops_trainer.bootstrap import Trainer
    from llmops_trainer.settings import Settings


@dataclass
class ContinuousTraining:
    pipeline: Pipeline
    evaluator: GrpcEvaluator
    rollout: GrpcRollout
    _task: asyncio.Task[None] | None = field(default=None)

    async def start(self) -> None:
        await self.pipeline.flush()  # steps a previous run stored but did not emit
        self._task = asyncio.create_task(self.pipeline.run(), name="continuous-training")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.evaluator.close()
        await self.rollout.close()


def build_continuous(settings: Settings, trainer: Trainer, bus: EventBus,
                     dataset_topic: str = DATASET_CREATED_TOPIC) -> ContinuousTraining:
    ct = settings.continuous
    key = settings.registry.api_key
    keys = TenantKeys(KeyMinter(SqlKeyStore(trainer.platform)),
                      key.get_secret_value() if key else None)
    create_catalogue(trainer.store.engine)
    evaluator = GrpcEvaluator(keys, ct.inference_address, settings.registry.address,
                              settings.datasets_root, settings.registry.timeout_seconds)
    rollout = GrpcRollout(keys, settings.registry.address, settings.registry.timeout_seconds)
    pipeline = Pipeline(ct, SqlLoopStore(trainer.store.engine), trainer.jobs,
                        CatalogueIndex(SqlCatalogue(trainer.store.engine)), evaluator, rollout,
                        BusStepSink(bus, SqlAuditLog(trainer.platform)))
    subscribe_triggers(bus, pipeline, ct.consumer_group, dataset_topic)
    return ContinuousTraining(pipeline, evaluator, rollout)
