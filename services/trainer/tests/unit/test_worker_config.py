"""config.validate: every field, with reasons a user understands; launch.command's argv."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from llmops_trainer.worker import config, launch
from llmops_trainer.worker.testing import chat_records, write_jsonl

pytestmark = pytest.mark.unit


@pytest.fixture
def spec(tmp_path: Path) -> dict[str, Any]:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "max_position_embeddings": 2048,
    }))
    (model / "model.safetensors").write_bytes(b"x")
    (model / "tokenizer.json").write_text("{}")
    return {
        "job_id": "job-1",
        "base_model_path": str(model),
        "train_path": str(write_jsonl(tmp_path / "train.jsonl", chat_records(16))),
        "validation_path": str(write_jsonl(tmp_path / "val.jsonl", chat_records(4))),
        "micro_batch_size": 2,
        "max_seq_len": 64,
    }


def test_valid_spec_has_no_reasons_and_parses_with_defaults(spec: dict[str, Any]) -> None:
    assert config.validate(spec) == []
    parsed = config.parse(spec)
    assert parsed.zero_stage == 2 and parsed.lora is True and parsed.response_only_loss is True
    assert parsed.records_per_step == 2
    assert parsed.base_model_path == Path(spec["base_model_path"])


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("zero_stage", 0, "zero_stage must be between 1 and 3"),
        ("zero_stage", 4, "zero_stage must be between 1 and 3"),
        ("zero_stage", "2", "zero_stage must be a whole number"),
        ("world_size", 3, "world_size must be between 1 and 2"),
        ("micro_batch_size", 0, "micro_batch_size must be between 1 and 1024"),
        ("gradient_accumulation", -1, "gradient_accumulation must be between 1"),
        ("epochs", 0, "epochs must be between 1"),
        ("lora_r", 0, "lora_r must be between 1 and 1024"),
        ("learning_rate", 0, "learning_rate must be a number above 0"),
        ("learning_rate", float("nan"), "learning_rate must be a number above 0"),
        ("learning_rate", True, "learning_rate must be a number above 0"),
        ("lora", "yes", "lora must be true or false"),
        ("packing", 1, "packing must be true or false"),
        ("eval_interval_steps", 0, "eval_interval_steps must be at least 1"),
        ("checkpoint_interval_steps", 0, "checkpoint_interval_steps must be at least 1"),
        ("early_stopping_patience", -1, "early_stopping_patience must be at least 0"),
        ("max_steps", -5, "max_steps must be at least 0"),
        ("max_seq_len", 4, "max_seq_len must be at least 8"),
        ("job_id", " ", "job_id must be a non-empty string"),
        ("colour", "red", "unknown field(s): colour"),
    ],
)
def test_each_bad_field_is_named(spec: dict[str, Any], field: str, value: Any, expected: str) -> None:
    reasons = config.validate({**spec, field: value})
    assert len(reasons) == 1, reasons
    assert reasons[0].startswith(expected), reasons


def test_lora_rank_is_not_checked_for_full_fine_tunes(spec: dict[str, Any]) -> None:
    assert config.validate({**spec, "lora": False, "lora_r": 0}) == []


def test_missing_required_fields_are_listed(spec: dict[str, Any]) -> None:
    reasons = config.validate({"job_id": "x"})
    assert reasons == [
        "base_model_path is required", "train_path is required", "validation_path is required",
    ]


def test_batch_must_fit_the_dataset(spec: dict[str, Any]) -> None:
    assert config.validate({**spec, "micro_batch_size": 4, "gradient_accumulation": 2, "world_size": 2}) == []
    reasons = config.validate({**spec, "micro_batch_size": 3, "gradient_accumulation": 3, "world_size": 2})
    assert reasons == [
        "one optimizer step needs micro_batch_size x gradient_accumulation x world_size = 18 "
        "training records but train_path holds 16"
    ]


def test_max_seq_len_within_model_positions(spec: dict[str, Any]) -> None:
    assert config.validate({**spec, "max_seq_len": 4096}) == [
        "max_seq_len 4096 exceeds the base model's 2048 positions"
    ]


def test_model_folder_checks(spec: dict[str, Any], tmp_path: Path) -> None:
    assert config.validate({**spec, "base_model_path": str(tmp_path / "nope")}) == [
        f"base_model_path {str(tmp_path / 'nope')!r} is not a folder on the training machine"
    ]
    model = Path(spec["base_model_path"])
    (model / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"]}))
    reasons = config.validate(spec)
    assert len(reasons) == 1 and reasons[0].startswith("base model architecture ['BertForMaskedLM'] is not")
    (model / "config.json").write_text("not json")
    assert "has no readable config.json" in config.validate(spec)[0]


def test_data_files_must_exist_and_hold_records(spec: dict[str, Any], tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    reasons = config.validate({**spec, "train_path": str(empty), "validation_path": str(tmp_path / "x")})
    assert reasons == [
        f"train_path {str(empty)!r} holds no records",
        f"validation_path {str(tmp_path / 'x')!r} does not exist",
    ]


def test_parse_raises_with_all_reasons(spec: dict[str, Any]) -> None:
    with pytest.raises(config.InvalidJob) as info:
        config.parse({**spec, "zero_stage": 5, "world_size": 0})
    assert len(info.value.reasons) == 2


def test_launch_command_runs_the_worker_under_torchrun(tmp_path: Path) -> None:
    argv = launch.command(tmp_path, 2)
    assert argv[:2] == ["env", "OMP_NUM_THREADS=1"]
    assert argv[2].startswith("TORCH_EXTENSIONS_DIR=") and "/torch_extensions/llmops-" in argv[2]
    assert argv[3:6] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=2" in argv and "--master_addr=127.0.0.1" in argv
    port = int(next(a for a in argv if a.startswith("--master_port=")).split("=")[1])
    assert 20000 <= port < 32768
    assert argv[-4:] == ["-m", "llmops_trainer.worker", "--job-dir", str(tmp_path.resolve())]
    with pytest.raises(ValueError, match="world_size must be between 1 and 2"):
        launch.command(tmp_path, 3)


def test_extensions_dir_respects_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "/x/ext")
    assert launch.extensions_dir() == "/x/ext"
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    first = launch.extensions_dir()
    monkeypatch.setattr(sys, "prefix", "/other/venv")
    assert launch.extensions_dir() != first  # one folder per virtualenv


def test_free_port_skips_taken_ports() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="no free TCP port"):
            launch.free_port(port, port, attempts=3)
