"""The continuous-training loop's state machine with stand-ins for jobs, evaluation, rollout."""

from __future__ import annotations

import json

import pytest

from llmops_trainer.domain.job import JobState
from llmops_trainer.pipeline.model import LoopState, job_id_for
from llmops_trainer.pipeline.settings import ContinuousSettings
from llmops_trainer.pipeline.testing import MemoryLoopStore, rig
from llmops_trainer.settings import Settings

pytestmark = pytest.mark.unit

DS = "ds-" + "a" * 16
EVAL = "ds-" + "e" * 16


async def run_to_canary(r, dataset: str = DS) -> str:  # type: ignore[no-untyped-def]
    loop = await r.pipeline.on_dataset("acme", dataset, "instruction", "qa")
    assert loop is not None
    await r.pipeline.tick()  # submit
    r.jobs.finish(job_id_for(loop.loop_id), JobState.SUCCEEDED, version=2)
    await r.pipeline.tick()  # job succeeded
    await r.pipeline.tick()  # evaluated
    await r.pipeline.tick()  # gate passed, canary started
    return loop.loop_id


async def test_a_matching_dataset_version_runs_the_loop_to_a_canary() -> None:
    r = rig(canary={"share": 25, "step": 50, "interval_seconds": 2, "min_requests": 3})
    loop_id = await run_to_canary(r)
    assert r.sink.names(loop_id) == ["triggered", "job_submitted", "job_succeeded",
                                     "evaluated", "gate_passed", "canary_started"]
    tenant, spec, by = r.jobs.submitted[0]
    assert (tenant, spec.dataset_id, spec.output_model_name, by) == \
        ("acme", DS, "smol", "continuous-training")
    assert (spec.lora, spec.max_steps, spec.max_seq_len) == (True, 3, 64)
    # Both the candidate and production evaluated on the resolved set, candidate first.
    assert r.evaluator.calls == [("acme", "smol", 2, EVAL), ("acme", "smol", 1, EVAL)]
    _, model, version, canary = r.rollout.started[0]
    assert (model, version, canary.share, canary.step, canary.min_requests) == \
        ("smol", 2, 25, 50, 3)
    last = r.sink.steps[-1]
    assert (last.loop.model_version, last.loop.production_version, last.loop.eval_dataset,
            last.loop.candidate_run_id, last.loop.production_run_id) == \
        (2, 1, EVAL, "ev-0000000000000002", "ev-0000000000000001")
    assert "holds_fact 0.750" in r.sink.steps[3].loop.reason
    assert [s.sequence for s in r.sink.steps] == [1, 2, 3, 4, 5, 6]
    assert not r.sink.steps[-1].final
    # The canary promotes: the loop ends with it (the canary is looked at once per interval).
    r.rollout.current = r.rollout.current.__class__("PROMOTED", 2, 100, "promoted v2")
    await r.pipeline.tick()
    assert r.sink.names(loop_id)[-1] == "canary_started"
    r.clock.advance(1)
    await r.pipeline.tick()
    assert r.sink.names(loop_id)[-1] == "canary_started"
    r.clock.advance(1)
    await r.pipeline.tick()
    assert r.sink.names(loop_id)[-1] == "canary_promoted"
    assert r.sink.steps[-1].final and r.sink.steps[-1].loop.reason == "promoted v2"
    assert r.store.active() == []


async def test_policy_off_or_unmatched_datasets_start_nothing() -> None:
    r = rig(dataset_names=["qa"], dataset_kinds=["chat"])
    assert await r.pipeline.on_dataset("acme", DS, "instruction", "qa") is None
    assert await r.pipeline.on_dataset("acme", DS, "chat", "other") is None
    assert await r.pipeline.on_dataset("other-tenant", DS, "chat", "qa") is None  # default: off
    assert await r.pipeline.on_drift("acme", "drift-1") is None  # on_drift off by default
    assert r.sink.steps == [] and r.jobs.submitted == []
    assert await r.pipeline.on_dataset("acme", DS, "chat", "qa") is not None


async def test_a_redelivered_event_starts_no_second_loop_or_job() -> None:
    r = rig()
    first = await r.pipeline.on_dataset("acme", DS, "instruction", "qa")
    await r.pipeline.tick()
    again = await r.pipeline.on_dataset("acme", DS, "instruction", "qa")
    await r.pipeline.tick()
    assert first is not None and again is None
    assert len(r.jobs.submitted) == 1
    assert r.sink.names() == ["triggered", "job_submitted"]


async def test_drift_trains_on_the_newest_matching_version() -> None:
    r = rig(on_drift=True)
    loop = await r.pipeline.on_drift("acme", "drift-event-1")
    assert loop is not None and loop.trigger.value == "drift"
    assert (loop.trigger_ref, loop.dataset_id) == ("drift-event-1", "ds-" + "b" * 16)
    await r.pipeline.tick()
    assert r.jobs.submitted[0][1].dataset_id == "ds-" + "b" * 16
    assert await r.pipeline.on_drift("acme", "drift-event-1") is None  # redelivered
    r.index.trainable = None
    assert await r.pipeline.on_drift("acme", "drift-event-2") is None  # nothing to train on


async def test_one_loop_in_flight_and_the_cooldown_skip_new_triggers() -> None:
    r = rig(cooldown_seconds=600)
    first = await r.pipeline.on_dataset("acme", DS, "instruction", "qa")
    assert first is not None
    busy = await r.pipeline.on_dataset("acme", "ds-" + "c" * 16, "instruction", "qa")
    assert busy is not None and busy.state is LoopState.SKIPPED
    assert f"loop {first.loop_id} is in flight" in busy.reason
    await r.pipeline.tick()
    r.jobs.finish(job_id_for(first.loop_id), JobState.FAILED, error="OOM")
    await r.pipeline.tick()
    r.clock.advance(60)
    cool = await r.pipeline.on_dataset("acme", "ds-" + "d" * 16, "instruction", "qa")
    assert cool is not None and cool.state is LoopState.SKIPPED
    assert cool.reason.startswith("cooldown")
    r.clock.advance(600)
    ok = await r.pipeline.on_dataset("acme", "ds-" + "f" * 16, "instruction", "qa")
    assert ok is not None and ok.state is LoopState.TRIGGERED
    assert r.sink.names(busy.loop_id) == ["skipped"] and r.sink.steps[1].final
    assert len(r.jobs.submitted) == 1


async def test_a_failed_job_ends_the_loop_with_its_error() -> None:
    r = rig()
    loop = await r.pipeline.on_dataset("acme", DS, "instruction", "qa")
    assert loop is not None
    await r.pipeline.tick()
    await r.pipeline.tick()  # still queued: nothing happens
    assert r.sink.names() == ["triggered", "job_submitted"]
    r.jobs.finish(job_id_for(loop.loop_id), JobState.FAILED, error="worker exited 1")
    await r.pipeline.tick()
    assert r.sink.names()[-1] == "job_failed"
    assert r.sink.steps[-1].loop.reason == f"job {job_id_for(loop.loop_id)} FAILED: worker " \
                                           "exited 1"
    assert r.evaluator.calls == [] and r.rollout.started == []


async def test_a_refused_job_ends_the_loop_failed() -> None:
    r = rig()
    r.jobs.refuse = "DATASET_NOT_FOUND"
    await r.pipeline.on_dataset("acme", DS, "instruction", "qa")
    await r.pipeline.tick()
    assert r.sink.names() == ["triggered", "failed"]
    assert r.sink.steps[-1].loop.reason.startswith("job refused: DATASET_NOT_FOUND")


async def test_a_refused_gate_ends_the_loop_with_the_reason() -> None:
    r = rig()
    r.rollout.refuse = "promotion gate: gate failed: holds_fact 0.4 < 0.5"
    loop_id = await run_to_canary(r)
    assert r.sink.names(loop_id)[-2:] == ["evaluated", "gate_refused"]
    assert r.sink.steps[-1].loop.reason == "promotion gate: gate failed: holds_fact 0.4 < 0.5"
    assert r.sink.steps[-1].final and r.rollout.started == []


async def test_no_production_version_evaluates_the_candidate_only() -> None:
    r = rig()
    r.rollout.prod = None
    loop_id = await run_to_canary(r)
    assert r.evaluator.calls == [("acme", "smol", 2, EVAL)]
    assert r.sink.names(loop_id)[-1] == "canary_started"
    assert r.sink.steps[-1].loop.production_version == 0


async def test_a_missing_evaluation_set_fails_the_loop() -> None:
    r = rig(eval_dataset="nope")
    loop_id = await run_to_canary(r)
    assert r.sink.names(loop_id)[-1] == "failed"
    assert "evaluation set 'nope' not found" in r.sink.steps[-1].loop.reason


async def test_a_step_failing_is_retried_then_ends_the_loop() -> None:
    r = rig()
    r.evaluator.fail_times = 1
    loop_id = await run_to_canary(r)  # evaluation fails once, retried by the next tick
    assert r.sink.names(loop_id)[-2:] == ["job_succeeded", "evaluated"]
    await r.pipeline.tick()
    assert r.sink.names(loop_id)[-1] == "canary_started"
    r2 = rig()
    r2.evaluator.fail_times = 10
    loop_id = await run_to_canary(r2)
    await r2.pipeline.tick()
    assert r2.sink.names(loop_id)[-1] == "failed"  # max_attempts 3
    assert r2.sink.steps[-1].loop.reason.startswith("job_succeeded: ")
    assert "INFERENCE_UNAVAILABLE" in r2.sink.steps[-1].loop.reason


async def test_a_restart_resumes_where_the_loop_was_and_emits_what_was_not() -> None:
    store = MemoryLoopStore()
    r = rig(store)
    loop = await r.pipeline.on_dataset("acme", DS, "instruction", "qa")
    assert loop is not None
    await r.pipeline.tick()
    job_id = job_id_for(loop.loop_id)
    # The trainer stops; the job finishes meanwhile; the bus is down for the first step.
    jobs = r.jobs
    jobs.finish(job_id, JobState.SUCCEEDED, version=7)
    r2 = rig(store)
    r2.jobs = jobs
    r2.pipeline.jobs = jobs
    r2.sink.fail = True
    await r2.pipeline.tick()
    assert r2.sink.steps == []
    r2.sink.fail = False
    await r2.pipeline.tick()  # emits job_succeeded, then evaluates
    await r2.pipeline.tick()
    assert r2.sink.names() == ["job_succeeded", "evaluated", "gate_passed", "canary_started"]
    assert r2.evaluator.calls[0] == ("acme", "smol", 7, EVAL)
    assert len(jobs.submitted) == 1  # no second job
    assert [s.sequence for s in store.steps(loop.loop_id)] == [1, 2, 3, 4, 5, 6]


async def test_a_loop_moved_by_another_replica_is_not_overwritten() -> None:
    r = rig()
    loop = await r.pipeline.on_dataset("acme", DS, "instruction", "qa")
    assert loop is not None
    stale = r.store.get(loop.loop_id)
    await r.pipeline.tick()
    assert stale is not None and not await r.pipeline.advance(stale)
    assert [s.step for s in r.store.steps(loop.loop_id)] == ["triggered", "job_submitted"]


def test_the_policy_is_off_by_default_and_read_from_json(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    assert not Settings().continuous.any_enabled
    assert not ContinuousSettings().policy("anyone").enabled
    monkeypatch.setenv("LLMOPS_TRAINER_CONTINUOUS", json.dumps({
        "tenants": {"acme": {"enabled": True, "eval_dataset": "ev", "on_drift": True,
                             "job": {"max_steps": 4}, "canary": {"interval_seconds": 5}}},
        "poll_seconds": 1}))
    s = Settings().continuous
    assert s.any_enabled and s.poll_seconds == 1
    p = s.policy("acme")
    assert (p.enabled, p.on_drift, p.job.max_steps, p.job.lora, p.canary.interval_seconds) == \
        (True, True, 4, True, 5)
    assert not s.policy("other").enabled
    monkeypatch.setenv("LLMOPS_TRAINER_CONTINUOUS", json.dumps({"tenants": {"acme": {
        "job": {"max_stepz": 4}}}}))
    with pytest.raises(ValueError, match="max_stepz"):
        Settings()
