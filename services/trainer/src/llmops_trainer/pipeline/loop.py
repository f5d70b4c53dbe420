"""The continuous-training loop: triggers start loops, `tick` moves every loop in flight on by
what it waits for, and every move is a step (stored with the loop, then emitted: published
and audited). All state is in the LoopStore, so a restarted trainer resumes each loop where
it was (a job that finished meanwhile is evaluated at the next tick)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from llmops_kit.errors import DomainError, InvalidArgument, NotFound
from llmops_trainer.domain.job import JobSpec, JobState
from llmops_trainer.pipeline.model import (
    GATE_PASSED,
    STEP_OF,
    Loop,
    LoopState,
    Step,
    Trigger,
    job_id_for,
    loop_id_for,
)
from llmops_trainer.pipeline.ports import (
    DatasetIndex,
    Evaluator,
    GateRefused,
    JobsPort,
    LoopStore,
    Rollout,
    StepSink,
)
from llmops_trainer.pipeline.settings import ContinuousSettings, TenantPolicy

log = logging.getLogger(__name__)

SUBMITTED_BY = "continuous-training"
MAX_REASON = 2000
_CANARY_END = {"PROMOTED": LoopState.PROMOTED, "ROLLED_BACK": LoopState.ROLLED_BACK,
               "ABORTED": LoopState.ABORTED}


def _why(exc: BaseException) -> str:
    # DomainErrors carry a stable reason and a message without secrets; others: the type only.
    if isinstance(exc, DomainError):
        return str(exc)[:MAX_REASON]
    return type(exc).__name__


class Pipeline:
    def __init__(self, settings: ContinuousSettings, store: LoopStore, jobs: JobsPort,
                 datasets: DatasetIndex, evaluator: Evaluator, rollout: Rollout,
                 sink: StepSink, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
                 ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.datasets = datasets
        self.evaluator = evaluator
        self.rollout = rollout
        self.sink = sink
        self.clock = clock
        self._lock = asyncio.Lock()
        # When each loop's canary was last looked at (at most once per canary interval: every
        # look is a registry call with a key minted for it).
        self._canary_seen: dict[str, datetime] = {}

    # -- triggers ---------------------------------------------------------------------------
    async def on_dataset(self, tenant: str, dataset_id: str, kind: str, name: str
                         ) -> Loop | None:
        """A new dataset version: a loop when the tenant's policy trains on it, else None."""
        policy = self.settings.policy(tenant)
        if not (policy.enabled and policy.on_dataset and kind in policy.dataset_kinds
                and (not policy.dataset_names or name in policy.dataset_names)):
            return None
        return await self._trigger(tenant, Trigger.DATASET, dataset_id, dataset_id, policy)

    async def on_drift(self, tenant: str, event_id: str) -> Loop | None:
        """Drift detected: a loop on the tenant's newest matching dataset version."""
        policy = self.settings.policy(tenant)
        if not (policy.enabled and policy.on_drift):
            return None
        found = await asyncio.to_thread(self.datasets.newest, tenant, policy.dataset_kinds,
                                        policy.dataset_names)
        if found is None:
            log.info("drift of a tenant without a trainable dataset version: no loop")
            return None
        return await self._trigger(tenant, Trigger.DRIFT, event_id, found.dataset_id, policy)

    async def _trigger(self, tenant: str, trigger: Trigger, ref: str, dataset_id: str,
                       policy: TenantPolicy) -> Loop | None:
        async with self._lock:
            loop_id = loop_id_for(tenant, trigger, ref)
            if await asyncio.to_thread(self.store.get, loop_id) is not None:
                return None  # a redelivered event: its loop exists already
            now = self.clock()
            loop = Loop(loop_id, tenant, trigger, ref, LoopState.TRIGGERED, now, now,
                        dataset_id=dataset_id, model_name=policy.model_name)
            skip = await self._skip_reason(tenant, policy, now)
            if skip:
                loop.state, loop.reason = LoopState.SKIPPED, skip
            loop.steps = 1
            step = Step(replace(loop), STEP_OF[loop.state], 1, now)
            if not await asyncio.to_thread(self.store.add, loop, step):
                return None
        log.info("continuous training %s: %s (%s)", loop.loop_id, loop.state.value,
                 loop.reason or trigger.value)
        await self.flush()
        return loop

    async def _skip_reason(self, tenant: str, policy: TenantPolicy, now: datetime) -> str:
        active = await asyncio.to_thread(self.store.active, tenant)
        if active:
            return f"loop {active[0].loop_id} is in flight"
        last = await asyncio.to_thread(self.store.latest_started, tenant)
        if last is not None:
            ready = last.created_at + timedelta(seconds=policy.cooldown_seconds)
            if now < ready:
                return (f"cooldown: loop {last.loop_id} started {last.created_at.isoformat()}, "
                        f"next from {ready.isoformat()}")
        return ""

    # -- moving loops on --------------------------------------------------------------------
    async def tick(self) -> int:
        """Moves every loop in flight on by one step where it can; returns how many moved."""
        moved = 0
        for loop in await asyncio.to_thread(self.store.active):
            try:
                if await self.advance(loop):
                    moved += 1
            except Exception:  # one loop's trouble never stops the others
                log.exception("continuous training %s: step failed", loop.loop_id)
        await self.flush()
        return moved

    async def advance(self, loop: Loop) -> bool:
        policy = self.settings.policy(loop.tenant)
        expected = loop.steps
        try:
            steps = await self._next(loop, policy)
        except Exception as exc:
            loop.attempts += 1
            loop.reason = _why(exc)
            if loop.attempts < self.settings.max_attempts:
                log.warning("continuous training %s: %s failed (attempt %d): %s", loop.loop_id,
                            loop.state.value, loop.attempts, loop.reason)
                return await asyncio.to_thread(self.store.save, loop, [], expected)
            steps = self._move(loop, LoopState.FAILED,
                               f"{loop.state.value.lower()}: {loop.reason}")
        if not steps:
            return False
        return await asyncio.to_thread(self.store.save, loop, steps, expected)

    def _move(self, loop: Loop, state: LoopState, reason: str = "",
              step: str | None = None) -> list[Step]:
        now = self.clock()
        loop.state, loop.reason, loop.updated_at, loop.attempts = state, reason[:MAX_REASON], \
            now, 0
        loop.steps += 1
        return [Step(replace(loop), step or STEP_OF[state], loop.steps, now)]

    async def _next(self, loop: Loop, policy: TenantPolicy) -> list[Step]:
        match loop.state:
            case LoopState.TRIGGERED:
                return await self._submit(loop, policy)
            case LoopState.JOB_SUBMITTED:
                return await self._job_done(loop)
            case LoopState.JOB_SUCCEEDED:
                return await self._evaluate(loop, policy)
            case LoopState.EVALUATED:
                return await self._canary(loop, policy)
            case LoopState.CANARY_STARTED:
                return await self._canary_done(loop, policy)
        return []

    async def _submit(self, loop: Loop, policy: TenantPolicy) -> list[Step]:
        o = policy.job
        spec = JobSpec(
            dataset_id=loop.dataset_id, base_model=o.base_model,
            output_model_name=policy.model_name, zero_stage=o.zero_stage, lora=o.lora,
            lora_r=o.lora_r, lora_alpha=o.lora_alpha, epochs=o.epochs,
            learning_rate=o.learning_rate, micro_batch_size=o.micro_batch_size,
            gradient_accumulation=o.gradient_accumulation, max_seq_len=o.max_seq_len,
            eval_interval_steps=o.eval_interval_steps,
            checkpoint_interval_steps=o.checkpoint_interval_steps, world_size=o.world_size,
            max_steps=o.max_steps, seed=o.seed)
        try:
            job = await self.jobs.submit(loop.tenant, spec, submitted_by=SUBMITTED_BY,
                                         job_id=job_id_for(loop.loop_id))
        except (InvalidArgument, NotFound) as exc:
            return self._move(loop, LoopState.FAILED, f"job refused: {_why(exc)}")
        loop.job_id = job.job_id
        return self._move(loop, LoopState.JOB_SUBMITTED,
                          f"{loop.trigger.value} {loop.trigger_ref} -> job {job.job_id} on "
                          f"{loop.dataset_id}")

    async def _job_done(self, loop: Loop) -> list[Step]:
        job = await self.jobs.get(loop.tenant, loop.job_id)
        if not job.state.final:
            return []
        if job.state is not JobState.SUCCEEDED or not job.model_version:
            return self._move(loop, LoopState.JOB_FAILED,
                              f"job {job.job_id} {job.state.value}: {job.error}".rstrip(": "))
        loop.model_name, loop.model_version = job.model_name, job.model_version
        return self._move(loop, LoopState.JOB_SUCCEEDED,
                          f"job {job.job_id} registered {job.model_name}@{job.model_version}")

    async def _evaluate(self, loop: Loop, policy: TenantPolicy) -> list[Step]:
        if not policy.eval_dataset:
            return self._move(loop, LoopState.FAILED, "no evaluation set (policy eval_dataset)")
        eval_id = await asyncio.to_thread(self.datasets.eval_set, loop.tenant,
                                          policy.eval_dataset)
        if eval_id is None:
            return self._move(loop, LoopState.FAILED, f"evaluation set {policy.eval_dataset!r}"
                              " not found (a dataset version of kind eval)")
        production = await self.rollout.production(loop.tenant, loop.model_name) or 0
        cand = await self.evaluator.evaluate(loop.tenant, loop.model_name, loop.model_version,
                                             eval_id, policy)
        loop.eval_dataset, loop.candidate_run_id = eval_id, cand.run_id
        loop.production_version = production
        line = f"candidate v{loop.model_version} holds_fact " \
               f"{cand.totals.get('holds_fact', 0.0):.3f}"
        if production and production != loop.model_version:
            prod = await self.evaluator.evaluate(loop.tenant, loop.model_name, production,
                                                 eval_id, policy)
            loop.production_run_id = prod.run_id
            line += f", production v{production} {prod.totals.get('holds_fact', 0.0):.3f}"
        return self._move(loop, LoopState.EVALUATED, f"{line} on {eval_id}")

    async def _canary(self, loop: Loop, policy: TenantPolicy) -> list[Step]:
        why = f"continuous training loop {loop.loop_id} ({loop.trigger.value} " \
              f"{loop.trigger_ref})"
        try:
            canary = await self.rollout.start_canary(loop.tenant, loop.model_name,
                                                     loop.model_version, policy.canary, why)
        except GateRefused as exc:
            return self._move(loop, LoopState.GATE_REFUSED, exc.reason)
        self._canary_seen[loop.loop_id] = self.clock()
        passed = self._move(loop, LoopState.CANARY_STARTED, canary.reason, step=GATE_PASSED)
        started = self._move(loop, LoopState.CANARY_STARTED,
                             f"canary of v{canary.candidate} at {canary.share}%")
        return passed + started

    async def _canary_done(self, loop: Loop, policy: TenantPolicy) -> list[Step]:
        now = self.clock()
        seen = self._canary_seen.get(loop.loop_id)
        if seen is not None and now < seen + timedelta(seconds=policy.canary.interval_seconds):
            return []
        self._canary_seen[loop.loop_id] = now
        canary = await self.rollout.canary(loop.tenant, loop.model_name)
        if canary is None or canary.candidate != loop.model_version:
            return self._move(loop, LoopState.ABORTED, "the canary was replaced or removed")
        state = _CANARY_END.get(canary.state)
        if state is None:
            return []
        self._canary_seen.pop(loop.loop_id, None)
        return self._move(loop, state, canary.reason)

    # -- emitting steps ---------------------------------------------------------------------
    async def flush(self, limit: int = 100) -> int:
        """Emits the steps not emitted yet, in order (again after a crash: at least once)."""
        sent = 0
        for step in await asyncio.to_thread(self.store.unpublished, limit):
            try:
                await self.sink.emit(step)
            except Exception:
                log.exception("continuous training %s: step %d not emitted yet",
                              step.loop.loop_id, step.sequence)
                break
            await asyncio.to_thread(self.store.mark_published, step.loop.loop_id, step.sequence)
            sent += 1
        return sent

    async def run(self) -> None:
        """Ticks until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("continuous training: tick failed")
            await asyncio.sleep(self.settings.poll_seconds)
