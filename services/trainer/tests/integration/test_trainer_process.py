"""`python -m llmops_trainer` as a process: SIGKILL it in the middle of a job, start it again,
and the job resumes from the worker's last checkpoint and still ends registered."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from llmops.trainer.v1 import trainer_pb2 as pb
from llmops.trainer.v1 import trainer_pb2_grpc
from llmops_cli.stack import wait_healthy
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import eventually
from llmops_trainer.worker.testing import base_model_dir

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
KEYS = ("dev-key-acme=acme:maintainer,dev-key-globex=globex:maintainer,"
        "dev-member-acme=acme:member")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "llmops_trainer"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def service(tmp_path: Path, registry: Any, kafka: KafkaSettings,
            trainer_kit: Any) -> Iterator[tuple[ServiceProcess, int]]:
    trainer_kit.write_dataset(tmp_path / "datasets")
    # The service runs the worker's own checks of job.json, so the base is the real SmolLM2
    # folder (the stand-in worker then ignores it).
    base = base_model_dir()
    run = uuid.uuid4().hex[:10]
    port = free_port()
    env = os.environ | {
        "LLMOPS_API_KEYS": KEYS, "LLMOPS_DEV_MODE": "true",
        "LLMOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LLMOPS_TRAINER_GRPC_PORT": str(port), "LLMOPS_TRAINER_METRICS_PORT": "0",
        "LLMOPS_TRAINER_DATABASE_URL": f"sqlite:///{tmp_path}/trainer.db",
        "LLMOPS_TRAINER_JOBS_ROOT": str(tmp_path / "jobs"),
        "LLMOPS_DATASETS_ROOT": str(tmp_path / "datasets"),
        "LLMOPS_TRAINER_REPLICA_ID": f"replica-{run}",
        "LLMOPS_TRAINER_REGISTRY__ADDRESS": f"127.0.0.1:{registry.port}",
        "LLMOPS_TRAINER_BASE_MODELS": json.dumps(
            {"smollm2-135m-instruct": {"path": str(base)}}),
        "LLMOPS_TRAINER_WORKER_COMMAND": json.dumps(
            [sys.executable, str(trainer_kit.standin), "--job-dir", "{job_dir}"]),
        "LLMOPS_TRAINER_CONSUMER_GROUP": f"trainer-test-{run}",
        "LLMOPS_TRAINER_JOB_REQUESTED_TOPIC": f"llmops.test-{run}.trainer.job-requested.v1",
        "LLMOPS_TRAINER_PROGRESS_TOPIC": f"llmops.test-{run}.trainer.progress.v1",
        "LLMOPS_TRAINER_POLL_SECONDS": "0.2", "LLMOPS_TRAINER_LEASE_SECONDS": "5",
        "STANDIN_STEP_SECONDS": "0.3",
    }
    proc = ServiceProcess(env, tmp_path / "trainer.log")
    try:
        yield proc, port
    finally:
        proc.stop()
        # Shown by pytest only when the test failed.
        print((tmp_path / "trainer.log").read_text(errors="replace")[-6000:])


def find_worker(job_dir: Path) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(job_dir).encode() in args and any(b"standin_worker" in a for a in args):
            return int(entry.name)
    raise AssertionError(f"no worker process for {job_dir}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_sigkill_mid_job_then_restart_resumes_from_checkpoint(
        service: tuple[ServiceProcess, int], trainer_kit: Any, tmp_path: Path) -> None:
    proc, port = service
    proc.start()
    assert await wait_healthy(port, timeout=90), (tmp_path / "trainer.log").read_text()[-3000:]
    md = trainer_kit.md()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = trainer_pb2_grpc.TrainerServiceStub(channel)
        job = await stub.SubmitJob(pb.SubmitJobRequest(
            dataset_id=trainer_kit.dataset, lora=True, max_steps=24,
            checkpoint_interval_steps=3, eval_interval_steps=3,
            output_model_name="acme-resumed"), metadata=md)
        job_dir = tmp_path / "jobs" / job.job_id

        async def past_a_checkpoint() -> bool:
            got = await stub.GetJob(pb.GetJobRequest(job_id=job.job_id), metadata=md)
            return got.last_progress.step >= 4 and (job_dir / "checkpoints").exists()

        await eventually(past_a_checkpoint, 90)
    worker_pid = find_worker(job_dir)
    proc.kill()

    async def worker_gone() -> bool:
        return not alive(worker_pid)

    await eventually(worker_gone, 10)  # it does not train on with nobody following it
    lines_before = (job_dir / "progress.jsonl").read_text().splitlines()

    proc.start()
    assert await wait_healthy(port, timeout=90)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = trainer_pb2_grpc.TrainerServiceStub(channel)
        done: list[pb.Job] = []

        async def finished() -> bool:
            got = await stub.GetJob(pb.GetJobRequest(job_id=job.job_id), metadata=md)
            done[:] = [got]
            return got.state in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED)

        await eventually(finished, 120)
        assert (done[0].state, done[0].error) == (pb.JOB_STATE_SUCCEEDED, "")
        assert (done[0].attempts, done[0].model_name, done[0].model_version) == \
            (2, "acme-resumed", 1)
        history = [p async for p in stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id),
                                                  metadata=md)]
    resumed = [p for p in history if p.kind == pb.PROGRESS_KIND_RESUMED]
    assert len(resumed) == 1 and resumed[0].step % 3 == 0 and resumed[0].step >= 3
    steps = [p.step for p in history if p.kind == pb.PROGRESS_KIND_STEP]
    # Every step line of the file became exactly one record, none twice from the first run.
    written = [json.loads(x) for x in (job_dir / "progress.jsonl").read_text().splitlines()]
    assert steps == [x["step"] for x in written if x["type"] == "step"]
    assert len(written) > len(lines_before)
    assert steps[-1] == 24 and resumed[0].step < max(
        json.loads(x)["step"] for x in lines_before if '"step"' in x) + 1
    assert [p.state for p in history if p.kind == pb.PROGRESS_KIND_STATE] == \
        [pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING, pb.JOB_STATE_RUNNING,
         pb.JOB_STATE_SUCCEEDED]
