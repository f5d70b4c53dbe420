"""The service's own checks of a job before it is queued (the worker's come on top).

Each problem is one reason string naming the field; the first one found decides the stable
`x-error-reason` (INVALID_CONFIG for the numbers, BAD_DATASET_ID, BAD_MODEL_NAME).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from llmops_kit.errors import InvalidArgument
from llmops_trainer.domain.job import JobSpec

DATASET_ID = re.compile(r"^ds-[0-9a-f]{16}$")
# As the registry names models (llmops_registry.domain.validation.NAME_RE).
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
BASE_REF = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}(@[1-9][0-9]{0,9})?$")
ZERO_STAGES = (1, 2, 3)
WORLD_SIZES = (1, 2)
MAX_EPOCHS = 100
MAX_SEQ_LEN = 8192
MAX_BATCH_TOKENS = 65536  # micro batch x sequence length per process


def config_problems(spec: JobSpec) -> list[str]:
    """Reasons the (defaulted) spec cannot run; empty = fine."""
    out: list[str] = []
    if spec.zero_stage not in ZERO_STAGES:
        out.append(f"zero_stage {spec.zero_stage} does not exist (1, 2 or 3)")
    if spec.world_size not in WORLD_SIZES:
        out.append(f"world_size {spec.world_size}: 1 or 2 worker processes")
    if not 1 <= spec.epochs <= MAX_EPOCHS:
        out.append(f"epochs {spec.epochs}: 1-{MAX_EPOCHS}")
    if not 0 < spec.learning_rate < 1:
        out.append(f"learning_rate {spec.learning_rate}: between 0 and 1")
    if not 1 <= spec.max_seq_len <= MAX_SEQ_LEN:
        out.append(f"max_seq_len {spec.max_seq_len}: 1-{MAX_SEQ_LEN}")
    if spec.micro_batch_size < 1 or spec.gradient_accumulation < 1:
        out.append("micro_batch_size and gradient_accumulation must be at least 1")
    elif spec.micro_batch_size * spec.max_seq_len > MAX_BATCH_TOKENS:
        out.append(f"micro_batch_size x max_seq_len = {spec.micro_batch_size * spec.max_seq_len}"
                   f" tokens does not fit (at most {MAX_BATCH_TOKENS} per process)")
    if spec.lora and (spec.lora_r < 1 or spec.lora_alpha < 1):
        out.append("lora_r and lora_alpha must be at least 1 with lora")
    if spec.eval_interval_steps < 1 or spec.checkpoint_interval_steps < 1:
        out.append("eval_interval_steps and checkpoint_interval_steps must be at least 1")
    return out


def check_spec(spec: JobSpec) -> None:
    """InvalidArgument with a stable reason for the first kind of problem found."""
    if not DATASET_ID.fullmatch(spec.dataset_id):
        raise InvalidArgument("BAD_DATASET_ID",
                              f"dataset_id {spec.dataset_id[:40]!r} is not ds-<16 hex> "
                              "(`llmops datasets list`)")
    if not BASE_REF.fullmatch(spec.base_model):
        raise InvalidArgument("UNKNOWN_BASE_MODEL", f"base_model {spec.base_model[:60]!r} is "
                                                    "not `name` or `name@version`")
    if not MODEL_NAME.fullmatch(spec.output_model_name):
        raise InvalidArgument("BAD_MODEL_NAME", f"output_model_name {spec.output_model_name[:60]!r}"
                                                " must match [a-z0-9][a-z0-9._-]{0,127}")
    problems = config_problems(spec)
    if problems:
        raise InvalidArgument("INVALID_CONFIG", "; ".join(problems))


def job_json(job_id: str, spec: JobSpec, base_model_path: Path, train_path: Path,
             validation_path: Path) -> dict[str, Any]:
    """JOB_DIR/job.json, the worker's input (interface 2 of issue 9)."""
    return {
        "job_id": job_id, "base_model_path": str(base_model_path),
        "train_path": str(train_path), "validation_path": str(validation_path),
        "zero_stage": spec.zero_stage, "lora": spec.lora, "lora_r": spec.lora_r,
        "lora_alpha": spec.lora_alpha, "epochs": spec.epochs,
        "learning_rate": spec.learning_rate, "micro_batch_size": spec.micro_batch_size,
        "gradient_accumulation": spec.gradient_accumulation, "max_seq_len": spec.max_seq_len,
        "packing": spec.packing, "response_only_loss": spec.response_only_loss,
        "eval_interval_steps": spec.eval_interval_steps,
        "checkpoint_interval_steps": spec.checkpoint_interval_steps,
        "early_stopping_patience": spec.early_stopping_patience,
        "world_size": spec.world_size, "seed": spec.seed, "max_steps": spec.max_steps,
    }
