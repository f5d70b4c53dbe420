"""Jobs end to end on real gRPC, Kafka and SQLite with the stand-in worker: submit ->
progress events -> a registered version with lineage; bad configurations; cancel; a worker
error; requests from Kafka (and their dead letters)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaProducer

from llmops.registry.v1 import registry_pb2
from llmops.trainer.v1 import trainer_pb2 as pb
from llmops_kit import events
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import error_reason, eventually, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
async def trainer(trainer_kit: Any, registry: Any, tmp_path: Path,
                  kafka: KafkaSettings) -> AsyncIterator[Any]:
    trainer_kit.write_dataset(tmp_path / "datasets")
    run = uuid.uuid4().hex[:10]

    def worker_check(spec: dict[str, Any]) -> list[str]:
        # Stands in for llmops_trainer.worker.config.validate.
        return ["packing needs max_seq_len >= 128"] if spec["packing"] and \
            spec["max_seq_len"] < 128 else []

    t = await trainer_kit.start(trainer_kit.settings(tmp_path, registry.port, kafka, run),
                                kafka, worker_check)
    try:
        yield t
    finally:
        await t.stop()


async def wait_state(t: Any, kit: Any, job_id: str, *states: int,
                     timeout: float = 60) -> pb.Job:
    found: list[pb.Job] = []

    async def reached() -> bool:
        try:
            job = await t.stub.GetJob(pb.GetJobRequest(job_id=job_id), metadata=kit.md())
        except grpc.aio.AioRpcError as exc:  # not consumed from Kafka yet
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        found[:] = [job]
        return job.state in states

    await eventually(reached, timeout)
    return found[0]


async def test_submit_to_registered_version_with_lineage(trainer: Any, trainer_kit: Any,
                                                         registry: Any,
                                                         kafka: KafkaSettings) -> None:
    job = await trainer.stub.SubmitJob(pb.SubmitJobRequest(
        dataset_id=trainer_kit.dataset, lora=True, zero_stage=2, max_steps=4,
        eval_interval_steps=2, checkpoint_interval_steps=2, max_seq_len=64,
        output_model_name="acme-arith"), metadata=trainer_kit.md())
    assert job.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)
    assert (job.spec.lora_r, job.spec.base_model, job.tenant_id) == \
        (8, "smollm2-135m-instruct", "acme")
    done = await wait_state(trainer, trainer_kit, job.job_id, pb.JOB_STATE_SUCCEEDED,
                            pb.JOB_STATE_FAILED)
    assert (done.state, done.error) == (pb.JOB_STATE_SUCCEEDED, "")
    assert (done.model_name, done.model_version) == ("acme-arith", 1)
    assert done.last_progress.state == pb.JOB_STATE_SUCCEEDED

    version = await registry.stub.GetModelVersion(
        registry_pb2.GetModelVersionRequest(name="acme-arith", version=1),
        metadata=trainer_kit.md())
    job_dir = trainer.settings.jobs_root / job.job_id
    assert version.tenant_id == "acme"
    assert (version.format, version.artifact_uri) == \
        ("peft-lora", (job_dir / "output").resolve().as_uri())
    assert (version.lineage.parent_name, version.lineage.parent_version) == \
        ("smollm2-135m-instruct", 1)
    assert version.lineage.training_job_id == job.job_id
    assert version.lineage.dataset_uri == f"dataset://acme/{trainer_kit.dataset}"
    meta = dict(version.metadata)
    assert (meta["dataset_id"], meta["job_id"], meta["code_version"]) == \
        (trainer_kit.dataset, job.job_id, "test-1")
    assert len(meta["dataset_sha256"]) == 64
    assert json.loads(meta["config"])["max_steps"] == 4
    assert json.loads(meta["metrics"])["best_step"] == 4
    # job.json for the worker: the spec plus the data copied into the job's folder.
    spec = json.loads((job_dir / "job.json").read_text())
    assert spec["train_path"] == str(job_dir / "data" / "train.jsonl")
    assert (spec["lora"], spec["zero_stage"], spec["max_seq_len"]) == (True, 2, 64)

    # WatchJob replays the whole history of a finished job, in order.
    watched = [p async for p in trainer.stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id),
                                                       metadata=trainer_kit.md())]
    kinds = [p.kind for p in watched]
    assert [p.sequence for p in watched] == list(range(1, len(watched) + 1))
    assert kinds.count(pb.PROGRESS_KIND_STEP) == 4
    assert kinds.count(pb.PROGRESS_KIND_EVAL) == 2
    assert kinds.count(pb.PROGRESS_KIND_CHECKPOINT) == 2
    steps = [p for p in watched if p.kind == pb.PROGRESS_KIND_STEP]
    assert [p.step for p in steps] == [1, 2, 3, 4]
    assert steps[1].loss == pytest.approx(1.0) and steps[1].tokens_per_s == pytest.approx(102)
    evals = [p for p in watched if p.kind == pb.PROGRESS_KIND_EVAL]
    assert evals[0].eval_metrics["val_loss"] == pytest.approx(1.25)
    assert [p.state for p in watched if p.kind == pb.PROGRESS_KIND_STATE] == \
        [pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING, pb.JOB_STATE_SUCCEEDED]
    assert (watched[-1].model_name, watched[-1].model_version) == ("acme-arith", 1)

    # The same records went out as TrainingProgress events, keyed by the job id.
    records = await read_topic(kafka, trainer.progress.topic, len(watched))
    got = [events.decode(trainer.progress, r.value) for r in records]
    assert {r.key for r in records} == {job.job_id.encode()}
    assert [e.sequence for e in got] == [p.sequence for p in watched]
    assert got[-1].envelope.tenant_id == "acme"

    listed = await trainer.stub.ListJobs(pb.ListJobsRequest(), metadata=trainer_kit.md())
    assert [j.job_id for j in listed.jobs] == [job.job_id]
    other = await trainer.stub.ListJobs(pb.ListJobsRequest(),
                                        metadata=trainer_kit.md("dev-key-globex"))
    assert list(other.jobs) == []


@pytest.mark.parametrize(("request_fields", "reason"), [
    ({"zero_stage": 4}, "INVALID_CONFIG"),
    ({"world_size": 3}, "INVALID_CONFIG"),
    ({"micro_batch_size": 64, "max_seq_len": 4096}, "INVALID_CONFIG"),
    ({"packing": True, "max_seq_len": 64}, "INVALID_CONFIG"),  # the worker's own check
    ({"base_model": "nobody-knows"}, "UNKNOWN_BASE_MODEL"),
    ({"base_model": "nobody-knows@3"}, "UNKNOWN_BASE_MODEL"),
    ({"dataset_id": "ds-ffffffffffffffff"}, "DATASET_NOT_FOUND"),
    ({"dataset_id": "../../etc"}, "BAD_DATASET_ID"),
])
async def test_bad_configurations_are_invalid_argument(trainer: Any, trainer_kit: Any,
                                                       request_fields: dict[str, Any],
                                                       reason: str) -> None:
    fields = {"dataset_id": trainer_kit.dataset} | request_fields
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await trainer.stub.SubmitJob(pb.SubmitJobRequest(**fields), metadata=trainer_kit.md())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(err.value) == reason
    listed = await trainer.stub.ListJobs(pb.ListJobsRequest(), metadata=trainer_kit.md())
    assert list(listed.jobs) == []  # nothing was queued


async def test_roles_and_tenants(trainer: Any, trainer_kit: Any) -> None:
    request = pb.SubmitJobRequest(dataset_id=trainer_kit.dataset, max_steps=1)
    with pytest.raises(grpc.aio.AioRpcError) as member:
        await trainer.stub.SubmitJob(request, metadata=trainer_kit.md("dev-member-acme"))
    assert member.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(member.value) == "ROLE_REQUIRED"
    # globex has no such dataset: each tenant trains on its own data only.
    with pytest.raises(grpc.aio.AioRpcError) as globex:
        await trainer.stub.SubmitJob(request, metadata=trainer_kit.md("dev-key-globex"))
    assert error_reason(globex.value) == "DATASET_NOT_FOUND"
    job = await trainer.stub.SubmitJob(request, metadata=trainer_kit.md())
    # A member reads its tenant's jobs; another tenant does not see them.
    got = await trainer.stub.GetJob(pb.GetJobRequest(job_id=job.job_id),
                                    metadata=trainer_kit.md("dev-member-acme"))
    assert got.job_id == job.job_id
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await trainer.stub.GetJob(pb.GetJobRequest(job_id=job.job_id),
                                  metadata=trainer_kit.md("dev-key-globex"))
    assert (hidden.value.code(), error_reason(hidden.value)) == \
        (grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
    with pytest.raises(grpc.aio.AioRpcError) as cancel:
        await trainer.stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id),
                                     metadata=trainer_kit.md("dev-member-acme"))
    assert cancel.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_cancel_a_running_job(trainer: Any, trainer_kit: Any,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_STEP_SECONDS", "0.2")
    job = await trainer.stub.SubmitJob(pb.SubmitJobRequest(
        dataset_id=trainer_kit.dataset, max_steps=500), metadata=trainer_kit.md())

    async def stepping() -> bool:
        got = await trainer.stub.GetJob(pb.GetJobRequest(job_id=job.job_id),
                                        metadata=trainer_kit.md())
        return got.last_progress.kind == pb.PROGRESS_KIND_STEP

    await eventually(stepping, 60)
    cancelled = await trainer.stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id),
                                             metadata=trainer_kit.md())
    assert cancelled.state == pb.JOB_STATE_RUNNING  # the worker is stopping
    done = await wait_state(trainer, trainer_kit, job.job_id, pb.JOB_STATE_CANCELLED,
                            pb.JOB_STATE_FAILED, pb.JOB_STATE_SUCCEEDED)
    assert done.state == pb.JOB_STATE_CANCELLED
    assert done.error.startswith("cancelled by acme")
    assert done.last_progress.step < 500
    lines = (trainer.settings.jobs_root / job.job_id / "progress.jsonl").read_text()
    assert '"type": "cancelled"' in lines  # the worker got SIGTERM and said so
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await trainer.stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id),
                                     metadata=trainer_kit.md())
    assert (again.value.code(), error_reason(again.value)) == \
        (grpc.StatusCode.FAILED_PRECONDITION, "JOB_FINISHED")


async def test_a_queued_job_is_cancelled_at_once_and_a_worker_error_fails_the_job(
        trainer: Any, trainer_kit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_FAIL_AT", "2")
    monkeypatch.setenv("STANDIN_STEP_SECONDS", "0.3")
    first = await trainer.stub.SubmitJob(pb.SubmitJobRequest(
        dataset_id=trainer_kit.dataset, max_steps=5), metadata=trainer_kit.md())
    second = await trainer.stub.SubmitJob(pb.SubmitJobRequest(
        dataset_id=trainer_kit.dataset, max_steps=5), metadata=trainer_kit.md())
    await wait_state(trainer, trainer_kit, first.job_id, pb.JOB_STATE_RUNNING,
                     pb.JOB_STATE_FAILED)
    queued = await trainer.stub.CancelJob(pb.CancelJobRequest(job_id=second.job_id),
                                          metadata=trainer_kit.md())
    assert queued.state == pb.JOB_STATE_CANCELLED  # one job at a time: it never started
    failed = await wait_state(trainer, trainer_kit, first.job_id, pb.JOB_STATE_FAILED,
                              pb.JOB_STATE_SUCCEEDED)
    assert failed.error == "worker error: stand-in failure at step 2"
    assert failed.model_version == 0


async def test_jobs_requested_over_kafka(trainer: Any, trainer_kit: Any,
                                         kafka: KafkaSettings) -> None:
    good = pb.TrainingJobRequested(
        envelope=events.make_envelope("test", tenant="acme"), job_id="job-from-kafka-1",
        spec=pb.SubmitJobRequest(dataset_id=trainer_kit.dataset, max_steps=2,
                                 output_model_name="acme-kafka"))
    bad = pb.TrainingJobRequested(
        envelope=events.make_envelope("test", tenant="acme"), job_id="job-from-kafka-2",
        spec=pb.SubmitJobRequest(dataset_id=trainer_kit.dataset, zero_stage=9))
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        for msg in (bad, good, good):  # the repeat changes nothing
            await producer.send_and_wait(trainer.requested.topic, msg.SerializeToString(),
                                         key=msg.job_id.encode())
    finally:
        await producer.stop()
    done = await wait_state(trainer, trainer_kit, "job-from-kafka-1", pb.JOB_STATE_SUCCEEDED,
                            pb.JOB_STATE_FAILED)
    assert (done.state, done.model_name, done.attempts) == \
        (pb.JOB_STATE_SUCCEEDED, "acme-kafka", 1)
    letters = await read_topic(kafka, f"{trainer.requested.topic}.dlq", 1)
    assert len(letters) == 1
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert headers["x-dlq-reason"] == "INVALID_CONFIG"
    assert letters[0].key == b"job-from-kafka-2"
    await asyncio.sleep(0.5)
    listed = await trainer.stub.ListJobs(pb.ListJobsRequest(), metadata=trainer_kit.md())
    assert [j.job_id for j in listed.jobs] == ["job-from-kafka-1"]
