"""Job states, defaults, the service's configuration checks and reading progress.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops_kit.errors import FailedPrecondition, InvalidArgument
from llmops_trainer.domain import progress
from llmops_trainer.domain.job import Defaults, JobSpec, JobState, check_move, with_defaults
from llmops_trainer.domain.validation import check_spec, job_json

pytestmark = pytest.mark.unit
DS = "ds-0123456789abcdef"


def spec(**kw: object) -> JobSpec:
    return with_defaults(JobSpec(dataset_id=DS, **kw), Defaults())  # type: ignore[arg-type]


def test_state_machine_allows_the_documented_moves_only() -> None:
    check_move("j", JobState.QUEUED, JobState.RUNNING)
    check_move("j", JobState.RUNNING, JobState.RUNNING)  # claimed again after a lease expired
    check_move("j", JobState.RUNNING, JobState.CANCELLED)
    with pytest.raises(FailedPrecondition) as finished:
        check_move("j", JobState.SUCCEEDED, JobState.CANCELLED)
    assert finished.value.reason == "JOB_FINISHED"
    with pytest.raises(FailedPrecondition) as bad:
        check_move("j", JobState.QUEUED, JobState.SUCCEEDED)
    assert bad.value.reason == "BAD_TRANSITION"


def test_defaults_fill_unset_fields_and_keep_set_ones() -> None:
    lora = spec(lora=True, epochs=3)
    assert (lora.epochs, lora.lora_r, lora.lora_alpha, lora.learning_rate) == (3, 8, 16, 2e-4)
    assert lora.base_model == "smollm2-135m-instruct"
    assert lora.output_model_name == "smollm2-135m-instruct-ft"
    full = spec(zero_stage=3, learning_rate=1e-5, base_model="mine@2")
    assert (full.zero_stage, full.learning_rate, full.lora_r) == (3, 1e-5, 0)
    assert full.output_model_name == "mine-ft"
    assert spec().response_only_loss is True


@pytest.mark.parametrize(("changes", "reason", "words"), [
    ({"zero_stage": 4}, "INVALID_CONFIG", "zero_stage 4 does not exist"),
    ({"world_size": 3}, "INVALID_CONFIG", "world_size 3"),
    ({"micro_batch_size": 64, "max_seq_len": 2048}, "INVALID_CONFIG", "does not fit"),
    ({"learning_rate": 5.0}, "INVALID_CONFIG", "learning_rate"),
    ({"output_model_name": "Bad Name"}, "BAD_MODEL_NAME", "output_model_name"),
    ({"base_model": "no such/model"}, "UNKNOWN_BASE_MODEL", "base_model"),
])
def test_bad_configurations_are_refused_with_a_reason(changes: dict[str, object], reason: str,
                                                      words: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_spec(spec(**changes))
    assert err.value.reason == reason
    assert words in err.value.message


def test_dataset_id_must_be_a_content_id() -> None:
    with pytest.raises(InvalidArgument) as err:
        check_spec(with_defaults(JobSpec(dataset_id="../etc"), Defaults()))
    assert err.value.reason == "BAD_DATASET_ID"


def test_job_json_has_every_field_of_the_worker_interface(tmp_path: Path) -> None:
    data = job_json("job-1", spec(lora=True, max_steps=3), tmp_path / "base",
                    tmp_path / "t.jsonl", tmp_path / "v.jsonl")
    assert set(data) == {
        "job_id", "base_model_path", "train_path", "validation_path", "zero_stage", "lora",
        "lora_r", "lora_alpha", "epochs", "learning_rate", "micro_batch_size",
        "gradient_accumulation", "max_seq_len", "packing", "response_only_loss",
        "eval_interval_steps", "checkpoint_interval_steps", "early_stopping_patience",
        "world_size", "seed", "max_steps"}
    assert (data["max_steps"], data["zero_stage"], data["base_model_path"]) == \
        (3, 2, str(tmp_path / "base"))


def test_progress_reads_complete_lines_only_and_stops_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    step = {"type": "step", "step": 1, "total_steps": 2, "epoch": 0.5, "loss": 1.5,
            "learning_rate": 0.1, "tokens_per_s": 10.0, "ts": 1.0, "extra": "dropped"}
    done = {"type": "done", "best_step": 1, "output_dir": "output", "output_format": "hf"}
    path.write_text(json.dumps(step) + "\nnot json\n" + json.dumps(done) + "\n{\"type\": \"st")
    chunk = progress.read_new(path, 0)
    assert chunk.records == [("step", {k: v for k, v in step.items()
                                       if k not in ("type", "ts", "extra")})]
    assert chunk.terminal == done
    assert chunk.offset == len(path.read_bytes()) - len('{"type": "st')
    # Nothing new until the partial line is complete.
    again = progress.read_new(path, chunk.offset)
    assert (again.records, again.terminal, again.offset) == ([], None, chunk.offset)
    assert progress.read_new(tmp_path / "missing.jsonl", 0).offset == 0


def test_settings_defaults_and_replica_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from llmops_trainer.settings import Settings

    monkeypatch.setenv("LLMOPS_HOME", "/srv/llmops")
    monkeypatch.delenv("LLMOPS_TRAINER_GRPC_PORT", raising=False)
    s = Settings()
    assert (s.grpc_port, s.service_name) == (7068, "trainer")
    assert s.replica_id == f"{socket.gethostname()}:7068"
    assert s.database_url == "sqlite:////srv/llmops/data/trainer.db"
    assert str(s.jobs_root) == "/srv/llmops/models/trainer-jobs"
    assert s.datasets_root == "/srv/llmops/artifacts/datasets"
    assert s.base_models["smollm2-135m-instruct"].path == \
        Path("/srv/llmops/models/smollm2-135m-instruct")
    monkeypatch.setenv("LLMOPS_TRAINER_GRPC_PORT", "7168")  # replica 1 of `llmops up`
    monkeypatch.setenv("LLMOPS_DATASETS_ROOT", "s3://bucket/datasets")
    other = Settings()
    assert other.replica_id == f"{socket.gethostname()}:7168"
    assert other.datasets_root == "s3://bucket/datasets"


def test_job_defaults_are_the_domain_dataclass_set_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from llmops_trainer.settings import Settings

    assert Settings().defaults == Defaults()
    monkeypatch.setenv("LLMOPS_TRAINER_DEFAULTS__ZERO_STAGE", "3")
    monkeypatch.setenv("LLMOPS_TRAINER_DEFAULTS__LEARNING_RATE_LORA", "0.001")
    s = Settings()
    assert isinstance(s.defaults, Defaults)
    assert (s.defaults.zero_stage, s.defaults.learning_rate_lora, s.defaults.lora_r) == \
        (3, 0.001, 8)
    assert with_defaults(JobSpec(dataset_id=DS, lora=True), s.defaults).zero_stage == 3
    monkeypatch.setenv("LLMOPS_TRAINER_DEFAULTS__ZERO_STAGE", "three")
    with pytest.raises(ValidationError, match="zero_stage"):
        Settings()
