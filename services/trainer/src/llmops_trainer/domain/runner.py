"""One replica's worker loop: claim a job, run its worker, turn progress into history and
events, register the result; one job at a time.

The job's folder (JOB_DIR = <jobs_root>/<job_id>) holds job.json, the data it trains on,
progress.jsonl, checkpoints/ and output/. Starting the worker again on the same folder resumes
from its last checkpoint, which is what a replica does with a job whose previous replica died.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops_kit.context import bound
from llmops_kit.errors import DeadlineExceeded, DomainError, Unavailable
from llmops_trainer.domain import progress
from llmops_trainer.domain.job import Job, JobState
from llmops_trainer.domain.validation import job_json
from llmops_trainer.ports import (
    JobStore,
    ModelRegistry,
    NewModelVersion,
    ProgressPublisher,
    RunningWorker,
    WorkerLauncher,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    jobs_root: Path
    owner: str  # this replica's id
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    cancel_grace_seconds: float = 30.0
    max_attempts: int = 5
    register_attempts: int = 5
    register_backoff_seconds: float = 2.0
    code_version: str = ""


def now() -> datetime:
    return datetime.now(UTC)


def sha256_files(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class JobRunner:
    def __init__(self, store: JobStore, launcher: WorkerLauncher, registry: ModelRegistry,
                 publisher: ProgressPublisher, config: RunnerConfig) -> None:
        self.store = store
        self.launcher = launcher
        self.registry = registry
        self.publisher = publisher
        self.config = config
        self.current: str | None = None
        self._worker: RunningWorker | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run_forever())

    async def stop(self) -> None:
        """Stops the loop; a running worker is killed and its lease released, so any replica
        (this one restarted, or another) resumes the job from its last checkpoint."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._worker is not None:
            self._worker.kill()
            self._worker = None
        if self.current is not None:
            release = getattr(self.store, "release", None)
            if release is not None:
                await asyncio.to_thread(release, self.current, self.config.owner, now())
            self.current = None

    async def run_forever(self) -> None:
        while True:
            try:
                ran = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop survives a job's failure (and a database blip)
                log.exception("job runner iteration failed")
                ran = False
            if not ran:
                await asyncio.sleep(self.config.poll_seconds)

    async def run_once(self) -> bool:
        """Claims and runs one job; False when none was waiting."""
        cfg = self.config
        job = await asyncio.to_thread(self.store.claim, cfg.owner, now(), cfg.lease_seconds)
        if job is None:
            return False
        self.current = job.job_id
        try:
            with bound(job.tenant, None):
                if job.last_progress is not None:
                    await self.publisher.publish(job, [job.last_progress])
                await self._run(job)
        finally:
            self.current = None
            self._worker = None
        return True

    # -- one job --------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.config.jobs_root / job_id

    def prepare(self, job: Job) -> Path:
        """JOB_DIR with job.json and the data (copied once: the job trains on what it was
        given, whatever happens to the store later)."""
        folder = self.job_dir(job.job_id)
        spec_file = folder / "job.json"
        if spec_file.exists():
            return folder
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        train = data / "train.jsonl"
        validation = data / "validation.jsonl"
        shutil.copyfile(job.resolved["train_path"], train)
        shutil.copyfile(job.resolved["validation_path"], validation)
        spec = job_json(job.job_id, job.spec, Path(job.resolved["base_model_path"]), train,
                        validation)
        tmp = folder / "job.json.tmp"
        tmp.write_text(json.dumps(spec, indent=2, sort_keys=True))
        tmp.replace(spec_file)
        return folder

    async def _finish(self, job: Job, state: JobState, error: str = "",
                      model: tuple[str, int] = ("", 0)) -> None:
        record = await asyncio.to_thread(self.store.finish, job.job_id, self.config.owner, state,
                                         error, now(), model[0], model[1])
        if record is not None:
            log.info("job %s %s", job.job_id, state.value, extra={"job_id": job.job_id})
            await self.publisher.publish(job, [record])

    async def _run(self, job: Job) -> None:
        cfg = self.config
        if job.attempts > cfg.max_attempts:
            await self._finish(job, JobState.FAILED,
                               f"gave up after {cfg.max_attempts} attempts")
            return
        if job.worker_pgid:  # a worker of an earlier run of this job may have outlived it
            await asyncio.to_thread(self.launcher.kill_group, job.worker_pgid)
        try:
            folder = await asyncio.to_thread(self.prepare, job)
        except OSError as exc:
            await self._finish(job, JobState.FAILED, f"cannot prepare the job: {exc.strerror}")
            return
        # On the loop's own thread: the kernel's parent-death signal follows the thread that
        # started the worker, and a pool thread may exit while the job still runs.
        worker = self.launcher.start(folder, job.spec.world_size, folder / "worker.log")
        self._worker = worker
        await asyncio.to_thread(self.store.set_worker, job.job_id, cfg.owner, worker.pgid)
        log.info("job %s started (attempt %d)", job.job_id, job.attempts,
                 extra={"job_id": job.job_id})
        await self._follow(job, folder, worker)

    async def _follow(self, job: Job, folder: Path, worker: RunningWorker) -> None:
        cfg = self.config
        offset = job.progress_offset
        terminated_at: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            exited = worker.poll()
            chunk = await asyncio.to_thread(progress.read_new, folder / "progress.jsonl", offset)
            if chunk.offset != offset or chunk.records:
                recorded = await asyncio.to_thread(self.store.record, job.job_id, cfg.owner,
                                                   chunk.records, chunk.offset, now())
                offset = chunk.offset
                if recorded:
                    await self.publisher.publish(job, recorded)
            fresh = await asyncio.to_thread(self.store.get_any, job.job_id)
            if chunk.terminal is not None:
                await self._wait_exit(worker)
                await self._ended(fresh or job, folder, chunk.terminal)
                return
            if exited is not None:
                cancelled_by = fresh.cancel_requested_by if fresh else ""
                if cancelled_by:
                    await self._finish(job, JobState.CANCELLED, f"cancelled by {cancelled_by}")
                else:
                    await self._finish(job, JobState.FAILED, f"worker exited with code {exited} "
                                       "without a result (see worker.log in the job folder)")
                return
            if not await asyncio.to_thread(self.store.renew, job.job_id, cfg.owner, now(),
                                           cfg.lease_seconds):
                log.warning("job %s: lease lost; stopping its worker", job.job_id)
                worker.kill()
                return
            if fresh is not None and fresh.cancel_requested_by:
                if terminated_at is None:
                    log.info("job %s: cancel requested", job.job_id)
                    worker.terminate()
                    terminated_at = loop.time()
                elif loop.time() - terminated_at > cfg.cancel_grace_seconds:
                    worker.kill()
            await asyncio.sleep(cfg.poll_seconds)

    async def _wait_exit(self, worker: RunningWorker, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while worker.poll() is None:
            if asyncio.get_running_loop().time() > deadline:
                worker.kill()
                return
            await asyncio.sleep(0.1)

    async def _ended(self, job: Job, folder: Path, line: dict[str, Any]) -> None:
        kind = line["type"]
        if kind == "error":
            await self._finish(job, JobState.FAILED, progress.error_message(line))
        elif kind == "cancelled":
            if job.cancel_requested_by:
                await self._finish(job, JobState.CANCELLED,
                                   f"cancelled by {job.cancel_requested_by}")
            else:
                await self._finish(job, JobState.FAILED, "the worker stopped (cancelled) "
                                   "without a cancel request")
        else:
            await self._done(job, folder, line)

    def new_version(self, job: Job, folder: Path, line: dict[str, Any]) -> NewModelVersion:
        output = Path(str(line.get("output_dir") or "output"))
        if not output.is_absolute():
            output = folder / output
        data = folder / "data"
        config = {k: v for k, v in job.spec.as_dict().items()}
        last_step = job.last_progress.data if job.last_progress else {}
        metrics = {"best_step": line.get("best_step"), "best_val_loss": line.get("best_val_loss"),
                   "early_stopped": bool(line.get("early_stopped")),
                   "final_step": last_step.get("step")}
        resolved = job.resolved
        return NewModelVersion(
            tenant=job.tenant, name=job.spec.output_model_name,
            artifact_uri=output.resolve().as_uri(), base_model=job.spec.base_model,
            format=str(line.get("output_format") or ("peft-lora" if job.spec.lora else "hf")),
            metadata={
                "job_id": job.job_id, "dataset_id": job.spec.dataset_id,
                "dataset_sha256": sha256_files(data / "train.jsonl", data / "validation.jsonl"),
                "base_model": job.spec.base_model,
                "config": json.dumps(config, sort_keys=True),
                "metrics": json.dumps(metrics, sort_keys=True),
                "code_version": self.config.code_version,
            },
            parent_name=str(resolved.get("parent_name", "")),
            parent_version=int(resolved.get("parent_version", 0) or 0),
            job_id=job.job_id, dataset_uri=f"dataset://{job.tenant}/{job.spec.dataset_id}",
        )

    async def _done(self, job: Job, folder: Path, line: dict[str, Any]) -> None:
        version = await asyncio.to_thread(self.new_version, job, folder, line)
        error = ""
        for attempt in range(1, self.config.register_attempts + 1):
            try:
                model = await self.registry.register(version)
            except DomainError as exc:
                error = f"registering the model failed: {exc.reason}: {exc.message[:300]}"
                log.warning("job %s: %s (attempt %d)", job.job_id, error, attempt)
                if not isinstance(exc, Unavailable | DeadlineExceeded):
                    break  # the registry refused the version: retrying changes nothing
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.store.renew, job.job_id, self.config.owner,
                                            now(), self.config.lease_seconds)
                await asyncio.sleep(min(self.config.register_backoff_seconds * attempt, 30.0))
                continue
            await self._finish(job, JobState.SUCCEEDED, "", model)
            return
        await self._finish(job, JobState.FAILED, error)
