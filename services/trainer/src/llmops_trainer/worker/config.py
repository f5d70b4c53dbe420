"""The job specification (JOB_DIR/job.json) and its validation.

`validate(spec)` is what trainer-svc calls before queueing a job (INVALID_ARGUMENT with the
reasons); the worker calls it again at start-up, so a job.json edited by hand fails early with
the same sentences instead of deep inside DeepSpeed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# Causal LM architectures the worker has been run with (LoRA target modules below are theirs).
SUPPORTED_ARCHITECTURES = frozenset(
    {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}
)
MAX_WORLD_SIZE = 2

DEFAULTS: dict[str, Any] = {
    "zero_stage": 2,
    "lora": True,
    "lora_r": 8,
    "lora_alpha": 16,
    "epochs": 1,
    "learning_rate": 2e-4,
    "micro_batch_size": 2,
    "gradient_accumulation": 1,
    "max_seq_len": 512,
    "packing": False,
    "response_only_loss": True,
    "eval_interval_steps": 50,
    "checkpoint_interval_steps": 50,
    "early_stopping_patience": 3,
    "world_size": 1,
    "seed": 42,
    "max_steps": 0,
}
REQUIRED = ("job_id", "base_model_path", "train_path", "validation_path")


@dataclass(frozen=True)
class JobSpec:
    """job.json after validation (interface 2); defaults fill the optional fields."""

    job_id: str
    base_model_path: Path
    train_path: Path
    validation_path: Path
    zero_stage: int
    lora: bool
    lora_r: int
    lora_alpha: int
    epochs: int
    learning_rate: float
    micro_batch_size: int
    gradient_accumulation: int
    max_seq_len: int
    packing: bool
    response_only_loss: bool
    eval_interval_steps: int
    checkpoint_interval_steps: int
    early_stopping_patience: int
    world_size: int
    seed: int
    max_steps: int

    @property
    def records_per_step(self) -> int:
        """Training sequences consumed by one optimizer step over all processes."""
        return self.micro_batch_size * self.gradient_accumulation * self.world_size

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}


class InvalidJob(ValueError):
    """job.json does not describe a job the worker can run; `reasons` says why, one per item."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(spec: Mapping[str, Any], name: str, low: int, high: int | None, why: str) -> list[str]:
    value = spec[name]
    if not _is_int(value):
        return [f"{name} must be a whole number, not {value!r}"]
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        return [f"{name} must be {bound} ({why}); got {value}"]
    return []


def count_records(path: Path) -> int:
    """Non-blank lines of a JSONL file."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def read_model_config(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "config.json").read_text()))


def _check_model(spec: Mapping[str, Any]) -> tuple[list[str], dict[str, Any] | None]:
    raw = spec["base_model_path"]
    if not isinstance(raw, str) or not raw:
        return ["base_model_path must be the path of a Hugging Face model folder"], None
    folder = Path(raw)
    if not folder.is_dir():
        return [f"base_model_path {raw!r} is not a folder on the training machine"], None
    try:
        config = read_model_config(folder)
    except (OSError, ValueError):
        reason = f"base_model_path {raw!r} has no readable config.json (not a Hugging Face model folder)"
        return [reason], None
    archs = set(config.get("architectures") or ())
    if not archs & SUPPORTED_ARCHITECTURES:
        supported = ", ".join(sorted(SUPPORTED_ARCHITECTURES))
        return [f"base model architecture {sorted(archs)} is not a supported causal LM ({supported})"], None
    if not any((folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")) and not any(
        folder.glob("model-*.safetensors")
    ):
        return [f"base_model_path {raw!r} holds no weights (model.safetensors)"], None
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        return [f"base_model_path {raw!r} holds no tokenizer"], None
    return [], config


def _check_data(spec: Mapping[str, Any], name: str) -> tuple[list[str], int]:
    raw = spec[name]
    if not isinstance(raw, str) or not raw:
        return [f"{name} must be the path of a JSONL file"], 0
    path = Path(raw)
    if not path.is_file():
        return [f"{name} {raw!r} does not exist"], 0
    count = count_records(path)
    if count == 0:
        return [f"{name} {raw!r} holds no records"], 0
    return [], count


_BOOLS = ("lora", "packing", "response_only_loss")
_INTS: tuple[tuple[str, int, int | None, str], ...] = (
    ("zero_stage", 1, 3, "DeepSpeed ZeRO stages are 1, 2 and 3"),
    ("world_size", 1, MAX_WORLD_SIZE, "one or two CPU processes on this machine"),
    ("epochs", 1, 1000, "passes over the training set"),
    ("micro_batch_size", 1, 1024, "sequences per process per forward pass"),
    ("gradient_accumulation", 1, 1024, "micro-batches per optimizer step"),
    ("max_seq_len", 8, None, "tokens per training sequence"),
    ("eval_interval_steps", 1, None, "optimizer steps between evaluations"),
    ("checkpoint_interval_steps", 1, None, "optimizer steps between checkpoints"),
    ("early_stopping_patience", 0, None, "0 turns early stopping off"),
    ("seed", 0, 2**32 - 1, "random seed"),
    ("max_steps", 0, None, "0 means no limit"),
)


def validate(spec: Mapping[str, Any]) -> list[str]:
    """Every reason `spec` (job.json, defaults filled) cannot run; empty when it can."""
    if not isinstance(spec, Mapping):
        return ["the job specification must be a JSON object"]
    reasons: list[str] = []
    unknown = sorted(set(spec) - set(DEFAULTS) - set(REQUIRED))
    if unknown:
        reasons.append(f"unknown field(s): {', '.join(unknown)}")
    missing = [name for name in REQUIRED if name not in spec]
    reasons += [f"{name} is required" for name in missing]
    full = {**DEFAULTS, **spec}
    if "job_id" not in missing and (not isinstance(full["job_id"], str) or not full["job_id"].strip()):
        reasons.append("job_id must be a non-empty string")
    for name in _BOOLS:
        if not isinstance(full[name], bool):
            reasons.append(f"{name} must be true or false, not {full[name]!r}")
    int_reasons = [r for name, low, high, why in _INTS for r in _check_int(full, name, low, high, why)]
    reasons += int_reasons
    lr = full["learning_rate"]
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or not 0 < lr <= 1:
        reasons.append(f"learning_rate must be a number above 0 and at most 1; got {lr!r}")
    if full["lora"] is True:
        reasons += _check_int(full, "lora_r", 1, 1024, "the LoRA rank")
        reasons += _check_int(full, "lora_alpha", 1, 1 << 16, "the LoRA scaling numerator")
    model_config = None
    if "base_model_path" not in missing:
        model_reasons, model_config = _check_model(full)
        reasons += model_reasons
    records = 0
    if "train_path" not in missing:
        data_reasons, records = _check_data(full, "train_path")
        reasons += data_reasons
    if "validation_path" not in missing:
        reasons += _check_data(full, "validation_path")[0]
    if int_reasons:
        return reasons  # the cross-field checks below need the numbers to be numbers
    if model_config is not None:
        positions = int(model_config.get("max_position_embeddings") or 0)
        if positions and full["max_seq_len"] > positions:
            reasons.append(
                f"max_seq_len {full['max_seq_len']} exceeds the base model's {positions} positions"
            )
    per_step = full["micro_batch_size"] * full["gradient_accumulation"] * full["world_size"]
    if records and per_step > records:
        reasons.append(
            f"one optimizer step needs micro_batch_size x gradient_accumulation x world_size = "
            f"{per_step} training records but train_path holds {records}"
        )
    return reasons


def parse(spec: Mapping[str, Any]) -> JobSpec:
    """The JobSpec of `spec`; InvalidJob with every reason when it is not valid."""
    reasons = validate(spec)
    if reasons:
        raise InvalidJob(reasons)
    full = {**DEFAULTS, **spec}
    convert: dict[str, Callable[[Any], Any]] = {
        "base_model_path": Path,
        "train_path": Path,
        "validation_path": Path,
        "learning_rate": float,
    }
    values = {f.name: convert.get(f.name, lambda v: v)(full[f.name]) for f in fields(JobSpec)}
    return JobSpec(**values)


def load(job_dir: Path) -> JobSpec:
    try:
        raw = json.loads((job_dir / "job.json").read_text())
    except OSError as exc:
        raise InvalidJob([f"cannot read {job_dir / 'job.json'}: {exc.strerror}"]) from exc
    except ValueError as exc:
        raise InvalidJob([f"job.json is not valid JSON: {exc}"]) from exc
    return parse(raw)
