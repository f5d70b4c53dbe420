"""`llmops train` and `llmops jobs ...` against a fake trainer on a real gRPC socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from llmops.trainer.v1 import trainer_pb2 as pb
from llmops.trainer.v1 import trainer_pb2_grpc
from llmops_cli.testing import fake_service, run

pytestmark = pytest.mark.unit

SPEC = pb.SubmitJobRequest(dataset_id="ds-0011223344556677", lora=True, zero_stage=2,
                           lora_r=8, lora_alpha=16, epochs=1, learning_rate=2e-4,
                           base_model="smollm2-135m-instruct",
                           output_model_name="smollm2-135m-instruct-ft",
                           micro_batch_size=1, gradient_accumulation=1, max_seq_len=512,
                           world_size=1)
HISTORY = [
    pb.TrainingProgress(job_id="job-1", sequence=1, kind=pb.PROGRESS_KIND_STATE,
                        state=pb.JOB_STATE_QUEUED),
    pb.TrainingProgress(job_id="job-1", sequence=2, kind=pb.PROGRESS_KIND_STATE,
                        state=pb.JOB_STATE_RUNNING),
    pb.TrainingProgress(job_id="job-1", sequence=3, kind=pb.PROGRESS_KIND_STEP, step=1,
                        total_steps=2, loss=1.5, tokens_per_s=150, state=pb.JOB_STATE_RUNNING),
    pb.TrainingProgress(job_id="job-1", sequence=4, kind=pb.PROGRESS_KIND_EVAL, step=1,
                        eval_metrics={"val_loss": 1.25}, state=pb.JOB_STATE_RUNNING),
    pb.TrainingProgress(job_id="job-1", sequence=5, kind=pb.PROGRESS_KIND_STEP, step=2,
                        total_steps=2, loss=0.75, tokens_per_s=160, state=pb.JOB_STATE_RUNNING),
    pb.TrainingProgress(job_id="job-1", sequence=6, kind=pb.PROGRESS_KIND_STATE,
                        state=pb.JOB_STATE_SUCCEEDED, model_name="acme-ft", model_version=3),
]


class FakeTrainer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, str]]] = []
        self.history = HISTORY

    def _record(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        self.calls.append((method, request, dict(context.invocation_metadata())))

    def SubmitJob(self, request, context):  # type: ignore[no-untyped-def]
        self._record("SubmitJob", request, context)
        if request.zero_stage == 4:
            context.set_trailing_metadata((("x-error-reason", "INVALID_CONFIG"),))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "INVALID_CONFIG: zero_stage 4 does not exist (1, 2 or 3)")
        return pb.Job(job_id="job-1", state=pb.JOB_STATE_QUEUED, spec=SPEC)

    def GetJob(self, request, context):  # type: ignore[no-untyped-def]
        self._record("GetJob", request, context)
        return pb.Job(job_id=request.job_id, state=pb.JOB_STATE_SUCCEEDED, spec=SPEC,
                      model_name="acme-ft", model_version=3, attempts=1,
                      last_progress=HISTORY[4])

    def ListJobs(self, request, context):  # type: ignore[no-untyped-def]
        self._record("ListJobs", request, context)
        return pb.ListJobsResponse(jobs=[pb.Job(job_id="job-2", state=pb.JOB_STATE_RUNNING,
                                                spec=SPEC, last_progress=HISTORY[2])])

    def CancelJob(self, request, context):  # type: ignore[no-untyped-def]
        self._record("CancelJob", request, context)
        return pb.Job(job_id=request.job_id, state=pb.JOB_STATE_RUNNING, spec=SPEC)

    def WatchJob(self, request, context):  # type: ignore[no-untyped-def]
        self._record("WatchJob", request, context)
        yield from self.history


@pytest.fixture
def trainer(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTrainer]:
    fake = FakeTrainer()
    with fake_service(trainer_pb2_grpc.add_TrainerServiceServicer_to_server, fake,
                      "LLMOPS_TRAINER_ADDR", monkeypatch):
        yield fake


def test_train_sends_the_options_and_watches_with_a_progress_bar(
        trainer: FakeTrainer, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["train", "--tenant", "acme", "--dataset", "ds-0011223344556677", "--lora",
                "--zero-stage", "3", "--epochs", "2", "--lr", "0.001", "--max-steps", "2",
                "--all-tokens-loss", "--watch"])
    assert code == 0
    method, request, md = trainer.calls[0]
    assert method == "SubmitJob" and md["x-api-key"] == "k-acme"
    assert (request.dataset_id, request.lora, request.zero_stage, request.epochs,
            request.max_steps) == ("ds-0011223344556677", True, 3, 2, 2)
    assert request.learning_rate == pytest.approx(0.001)
    assert request.HasField("response_only_loss") and request.response_only_loss is False
    out = capsys.readouterr().out
    assert "job job-1" in out
    assert "[###############---------------] step 1/2  loss 1.5000  150 tok/s" in out
    assert "[##############################] step 2/2  loss 0.7500  160 tok/s  val 1.2500" in out
    assert "SUCCEEDED -> registered acme-ft@3" in out


def test_watch_exits_1_unless_the_job_succeeded_and_json_is_lines(
        trainer: FakeTrainer, capsys: pytest.CaptureFixture[str]) -> None:
    trainer.history = [*HISTORY[:3], pb.TrainingProgress(
        job_id="job-1", sequence=4, kind=pb.PROGRESS_KIND_STATE, state=pb.JOB_STATE_CANCELLED,
        message="cancelled by acme/k1")]
    assert run(["jobs", "watch", "job-1", "--tenant", "acme", "--json"]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["sequence"] for x in lines] == ["1", "2", "3", "4"]
    assert lines[-1]["message"] == "cancelled by acme/k1"


def test_jobs_list_show_cancel(trainer: FakeTrainer, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["jobs", "list", "--tenant", "acme", "--state", "running"]) == 0
    assert trainer.calls[-1][1].state == pb.JOB_STATE_RUNNING
    assert "job-2  RUNNING  dataset ds-0011223344556677  lora zero-2  step 1/2" in \
        capsys.readouterr().out
    assert run(["jobs", "show", "job-1", "--tenant", "acme", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["model_name"], shown["model_version"], shown["state"]) == \
        ("acme-ft", 3, "JOB_STATE_SUCCEEDED")
    assert run(["jobs", "cancel", "job-1", "--tenant", "acme"]) == 0
    assert "job-1: stopping (SIGTERM sent to its worker)" in capsys.readouterr().out


def test_a_bad_configuration_is_reported(trainer: FakeTrainer,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["train", "--tenant", "acme", "--dataset", "ds-0011223344556677",
                "--zero-stage", "4"]) == 1
    assert "INVALID_ARGUMENT: INVALID_CONFIG: zero_stage 4 does not exist" in \
        capsys.readouterr().err
