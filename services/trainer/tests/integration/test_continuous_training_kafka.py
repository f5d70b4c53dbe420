"""Continuous training's consumer and step events on the real Kafka broker, its loops in
SQLite and its audit entries in the platform's SQL audit log (jobs, evaluation and rollout
are stand-ins here; tests/e2e/test_training_loop.py runs the real ones)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmops.observability.v1 import observability_pb2
from llmops.trainer.v1 import datasets_pb2, pipeline_pb2
from llmops_kit import events
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.sql_auth import SqlAuditLog, open_engine
from llmops_kit.testing import eventually, read_topic, start_group_at_end
from llmops_trainer.domain.job import JobState
from llmops_trainer.pipeline.events import BusStepSink, subscribe_triggers
from llmops_trainer.pipeline.loop import Pipeline
from llmops_trainer.pipeline.model import job_id_for
from llmops_trainer.pipeline.settings import ContinuousSettings
from llmops_trainer.pipeline.store import SqlLoopStore
from llmops_trainer.pipeline.testing import (
    Clock,
    FakeEvaluator,
    FakeIndex,
    FakeJobs,
    FakeRollout,
    policy,
)

pytestmark = pytest.mark.integration

TENANT = "acme"


def created(dataset_id: str, kind: int, name: str = "qa") -> datasets_pb2.DatasetVersionCreated:
    return datasets_pb2.DatasetVersionCreated(
        envelope=events.make_envelope("trainer", tenant=TENANT, event_id=f"ev-{dataset_id}"),
        dataset=datasets_pb2.Dataset(id=dataset_id, tenant_id=TENANT, name=name, kind=kind))


async def test_dataset_and_drift_events_start_loops_once_and_every_step_is_published_and_audited(
        kafka: KafkaSettings, unique: str, tmp_path: Path) -> None:
    ds_topic, drift_topic, step_topic = (f"test.ct.{x}.{unique}" for x in
                                         ("datasets", "drift", "steps"))
    group = f"ct-{unique}"
    await ensure_topics(kafka, [ds_topic, drift_topic, step_topic], partitions=1)
    await start_group_at_end(kafka, group, [ds_topic, drift_topic])
    ds_type = events.EventType(ds_topic, datasets_pb2.DatasetVersionCreated)
    drift_type = events.EventType(drift_topic, observability_pb2.DriftDetected)
    step_type = events.EventType(step_topic, pipeline_pb2.ContinuousTrainingStep)

    store = SqlLoopStore(open_engine(f"sqlite:///{tmp_path}/trainer.db"))
    audit = SqlAuditLog(open_engine(f"sqlite:///{tmp_path}/platform.db"))
    jobs = FakeJobs()
    settings = ContinuousSettings(tenants={TENANT: policy(on_drift=True, cooldown_seconds=0)})
    bus = EventBus(kafka, client_id=f"ct-{unique}")
    pipeline = Pipeline(settings, store, jobs, FakeIndex(), FakeEvaluator(), FakeRollout(),
                        BusStepSink(bus, audit, step_type), Clock())
    subscribe_triggers(bus, pipeline, group, ds_topic, drift=drift_type)
    await bus.start()
    try:
        ds = "ds-" + "1" * 16
        # The same event twice (a redelivery), and an eval version (not trained on).
        for event in (created(ds, datasets_pb2.DATASET_KIND_INSTRUCTION),
                      created(ds, datasets_pb2.DATASET_KIND_INSTRUCTION),
                      created("ds-" + "2" * 16, datasets_pb2.DATASET_KIND_EVAL)):
            await bus.publish(ds_type, event, TENANT.encode())

        async def one_loop() -> bool:
            return len(await asyncio.to_thread(store.active, TENANT)) == 1
        await eventually(one_loop, timeout=60)
        await asyncio.sleep(1.0)  # the redelivery and the eval version are handled by now
        loops = store.active(TENANT)
        assert len(loops) == 1 and loops[0].dataset_id == ds
        await pipeline.tick()
        jobs.finish(job_id_for(loops[0].loop_id), JobState.FAILED, error="boom")
        await pipeline.tick()
        assert len(jobs.submitted) == 1

        # Drift: a loop on the newest trainable version, once per drift event.
        drift = observability_pb2.DriftDetected(
            envelope=events.make_envelope("observability", tenant=TENANT, event_id="drift-1"),
            metric="query_embedding")
        await bus.publish(drift_type, drift, TENANT.encode())
        await bus.publish(drift_type, drift, TENANT.encode())

        async def drift_loop() -> bool:
            return len(await asyncio.to_thread(store.active, TENANT)) == 1
        await eventually(drift_loop, timeout=60)
        await asyncio.sleep(1.0)
        (dl,) = store.active(TENANT)
        assert (dl.trigger.value, dl.trigger_ref, dl.dataset_id) == \
            ("drift", "drift-1", "ds-" + "b" * 16)
    finally:
        await bus.stop()

    records = await read_topic(kafka, step_topic, 5, timeout=30)
    steps = [pipeline_pb2.ContinuousTrainingStep.FromString(r.value) for r in records]
    assert [(s.trigger, s.step, s.sequence) for s in steps] == [
        ("dataset", "triggered", 1), ("dataset", "job_submitted", 2),
        ("dataset", "job_failed", 3), ("drift", "triggered", 1)]
    first = steps[0]
    assert (first.envelope.tenant_id, first.envelope.event_id, first.dataset_id) == \
        (TENANT, f"{first.loop_id}-1", ds)
    assert records[0].key == first.loop_id.encode()
    assert steps[2].final and steps[2].reason.endswith("FAILED: boom")
    assert steps[1].job_id == job_id_for(first.loop_id)

    entries = await audit.query(tenant=TENANT)
    assert sorted(e.action for e in entries) == sorted(
        f"continuous_training.{s.step}" for s in steps)
    failed = next(e for e in entries if e.action == "continuous_training.job_failed")
    assert (failed.target, failed.service, failed.after["job_id"]) == \
        (first.loop_id, "trainer", steps[1].job_id)


async def test_loops_in_sqlite_survive_a_restart_and_a_stale_replica(tmp_path: Path) -> None:
    from llmops_trainer.pipeline.model import LoopState
    from llmops_trainer.pipeline.testing import rig

    url = f"sqlite:///{tmp_path}/trainer.db"
    r = rig(SqlLoopStore(open_engine(url)), cooldown_seconds=600)
    loop = await r.pipeline.on_dataset(TENANT, "ds-" + "1" * 16, "instruction", "qa")
    assert loop is not None
    await r.pipeline.tick()
    busy = await r.pipeline.on_dataset(TENANT, "ds-" + "2" * 16, "instruction", "qa")
    assert busy is not None and busy.state is LoopState.SKIPPED
    r.jobs.finish(job_id_for(loop.loop_id), JobState.SUCCEEDED, version=4)

    # A new trainer process on the same database: the loop goes on where it was.
    again = rig(SqlLoopStore(open_engine(url)))
    again.pipeline.jobs = again.jobs = r.jobs
    stale = again.store.get(loop.loop_id)
    assert stale is not None and stale.state is LoopState.JOB_SUBMITTED
    await again.pipeline.tick()  # job_succeeded
    assert not await again.pipeline.advance(stale)  # moved meanwhile: not overwritten
    await again.pipeline.tick()  # evaluated
    await again.pipeline.tick()  # gate passed, canary started
    steps = again.store.steps(loop.loop_id)
    assert [(s.step, s.sequence) for s in steps] == [
        ("triggered", 1), ("job_submitted", 2), ("job_succeeded", 3), ("evaluated", 4),
        ("gate_passed", 5), ("canary_started", 6)]
    assert steps[-1].loop.model_version == 4 and steps[-1].loop.production_version == 1
    assert again.sink.names(loop.loop_id) == ["job_succeeded", "evaluated", "gate_passed",
                                              "canary_started"]
    assert again.store.unpublished(10) == []
    latest = again.store.latest_started(TENANT)
    assert latest is not None and latest.loop_id == loop.loop_id  # the skipped one is not
    assert [x.loop_id for x in again.store.active(TENANT)] == [loop.loop_id]
    assert len(r.jobs.submitted) == 1


async def test_a_deleted_tenants_loops_and_steps_are_removed(tmp_path: Path) -> None:
    from llmops_trainer.pipeline.testing import policy, rig

    store = SqlLoopStore(open_engine(f"sqlite:///{tmp_path}/trainer.db"))
    r = rig(store)
    r.pipeline.settings = ContinuousSettings(tenants={TENANT: policy(), "globex": policy()})
    mine = await r.pipeline.on_dataset(TENANT, "ds-" + "3" * 16, "instruction", "qa")
    other = await r.pipeline.on_dataset("globex", "ds-" + "4" * 16, "instruction", "qa")
    assert mine is not None and other is not None and store.steps(mine.loop_id)

    assert store.delete_tenant(TENANT) == 1
    assert store.get(mine.loop_id) is None and store.steps(mine.loop_id) == []
    kept = store.get(other.loop_id)
    assert kept is not None and [s.step for s in store.steps(other.loop_id)] == ["triggered"]
    assert store.delete_tenant(TENANT) == 0  # redelivered: nothing left
