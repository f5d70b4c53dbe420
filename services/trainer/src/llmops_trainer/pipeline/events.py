"""Kafka edge of continuous training: DatasetVersionCreated and DriftDetected in (each may
start a loop), ContinuousTrainingStep out (key: the loop id) with an audit entry per step.

The consumer group starts at the end of the topics the first time (turning continuous
training on never retrains on old versions); a redelivered event finds its loop and starts
nothing (the loop id follows the tenant and the dataset id or drift event id).
"""

from __future__ import annotations

import logging
from typing import Any

from llmops.observability.v1 import observability_pb2
from llmops.trainer.v1 import datasets_pb2, pipeline_pb2
from llmops_kit import events
from llmops_kit.audit import AuditEntry, AuditLog
from llmops_kit.context import bound
from llmops_kit.kafka import Batch, EventBus
from llmops_trainer.pipeline.loop import Pipeline
from llmops_trainer.pipeline.model import Step

log = logging.getLogger(__name__)

PRODUCER = "trainer"
AUDIT_ACTOR = "trainer:continuous-training"
_KIND = {datasets_pb2.DATASET_KIND_INSTRUCTION: "instruction",
         datasets_pb2.DATASET_KIND_CHAT: "chat", datasets_pb2.DATASET_KIND_TEXT: "text",
         datasets_pb2.DATASET_KIND_EVAL: "eval"}


def step_pb(step: Step) -> pipeline_pb2.ContinuousTrainingStep:
    loop = step.loop
    msg = pipeline_pb2.ContinuousTrainingStep(
        loop_id=loop.loop_id, trigger=loop.trigger.value, trigger_ref=loop.trigger_ref,
        step=step.step, sequence=step.sequence, dataset_id=loop.dataset_id, job_id=loop.job_id,
        model_name=loop.model_name, model_version=loop.model_version,
        production_version=loop.production_version, eval_dataset=loop.eval_dataset,
        candidate_run_id=loop.candidate_run_id, production_run_id=loop.production_run_id,
        reason=loop.reason, final=step.final)
    msg.envelope.CopyFrom(events.make_envelope(
        PRODUCER, tenant=loop.tenant, event_id=f"{loop.loop_id}-{step.sequence}"))
    msg.envelope.occurred_at.FromDatetime(step.at)
    return msg


def audit_entry(step: Step) -> AuditEntry:
    loop = step.loop
    after: dict[str, Any] = {
        "step": step.step, "sequence": step.sequence, "state": loop.state.value,
        "trigger": loop.trigger.value, "trigger_ref": loop.trigger_ref,
        "dataset_id": loop.dataset_id, "job_id": loop.job_id, "model_name": loop.model_name,
        "model_version": loop.model_version, "production_version": loop.production_version,
        "eval_dataset": loop.eval_dataset, "candidate_run_id": loop.candidate_run_id,
        "production_run_id": loop.production_run_id, "reason": loop.reason}
    return AuditEntry(action=f"continuous_training.{step.step}", target=loop.loop_id,
                      tenant=loop.tenant, actor=AUDIT_ACTOR, actor_tenant="",
                      service="trainer", after=after, occurred_at=step.at)


class BusStepSink:
    """StepSink: the event on the bus, then the audit entry (a failure: retried later)."""

    def __init__(self, bus: EventBus, audit: AuditLog,
                 event_type: events.EventType[pipeline_pb2.ContinuousTrainingStep]
                 = events.CONTINUOUS_TRAINING_STEP) -> None:
        self.bus = bus
        self.audit = audit
        self.event_type = event_type

    async def emit(self, step: Step) -> None:
        await self.bus.publish(self.event_type, step_pb(step), step.loop.loop_id.encode())
        await self.audit.record(audit_entry(step))


def subscribe_triggers(
    bus: EventBus, pipeline: Pipeline, group: str, dataset_topic: str,
    drift: events.EventType[observability_pb2.DriftDetected] = events.DRIFT_DETECTED,
) -> None:
    created = events.EventType(dataset_topic, datasets_pb2.DatasetVersionCreated)

    async def on_datasets(batch: Batch[datasets_pb2.DatasetVersionCreated]) -> None:
        for item in batch.items:
            d = item.event.dataset
            tenant = d.tenant_id or item.tenant
            with bound(tenant, item.event.envelope.trace_id or None):
                loop = await pipeline.on_dataset(tenant, d.id, _KIND.get(d.kind, ""), d.name)
            if loop is not None:
                log.info("dataset version %s: continuous training loop %s", d.id,
                         loop.loop_id)

    async def on_drift(batch: Batch[observability_pb2.DriftDetected]) -> None:
        for item in batch.items:
            env = item.event.envelope
            if not item.tenant or not env.event_id:
                continue  # platform-wide drift: no tenant's loop to start
            with bound(item.tenant, env.trace_id or None):
                loop = await pipeline.on_drift(item.tenant, env.event_id)
            if loop is not None:
                log.info("drift %s: continuous training loop %s", env.event_id, loop.loop_id)

    bus.subscribe_batch(created, group, on_datasets, start_at="latest")
    bus.subscribe_batch(drift, group, on_drift, start_at="latest")
