"""Jobs as data: the training configuration, the job record, its states and their moves.

QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED, and QUEUED -> CANCELLED. A RUNNING job
whose replica died stays RUNNING until its lease expires; another replica (or the same one
restarted) claims it again and the worker resumes from its last checkpoint.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from llmops_kit.errors import FailedPrecondition


class JobState(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
MOVES: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    # RUNNING -> RUNNING: claimed again after its lease expired (resume).
    JobState.RUNNING: frozenset({JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED,
                                 JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


def check_move(job_id: str, current: JobState, target: JobState) -> None:
    """FailedPrecondition JOB_FINISHED / BAD_TRANSITION unless `current -> target` is allowed."""
    if target in MOVES[current]:
        return
    if current.final:
        raise FailedPrecondition("JOB_FINISHED", f"job {job_id} is already {current.value}")
    raise FailedPrecondition("BAD_TRANSITION",
                             f"job {job_id}: {current.value} -> {target.value} is not allowed")


@dataclass(frozen=True)
class JobSpec:
    """What a caller asks for; zero/empty fields take the service's defaults (`with_defaults`)."""

    dataset_id: str
    base_model: str = ""
    output_model_name: str = ""
    zero_stage: int = 0
    lora: bool = False
    lora_r: int = 0
    lora_alpha: int = 0
    epochs: int = 0
    learning_rate: float = 0.0
    micro_batch_size: int = 0
    gradient_accumulation: int = 0
    max_seq_len: int = 0
    packing: bool = False
    response_only_loss: bool = True
    eval_interval_steps: int = 0
    checkpoint_interval_steps: int = 0
    early_stopping_patience: int = 0
    world_size: int = 0
    max_steps: int = 0
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Defaults:
    """The service's defaults for unset fields (settings `defaults`, LLMOPS_TRAINER_DEFAULTS__*)."""

    base_model: str = "smollm2-135m-instruct"
    zero_stage: int = 2
    lora_r: int = 8
    lora_alpha: int = 16
    epochs: int = 1
    learning_rate_lora: float = 2e-4
    learning_rate_full: float = 2e-5
    micro_batch_size: int = 1
    gradient_accumulation: int = 1
    max_seq_len: int = 512
    eval_interval_steps: int = 50
    checkpoint_interval_steps: int = 50
    early_stopping_patience: int = 3
    world_size: int = 1
    seed: int = 42


def with_defaults(spec: JobSpec, d: Defaults) -> JobSpec:
    """The spec with every unset field filled in, as it is stored and run."""

    def pick(value: Any, default: Any) -> Any:
        return value if value else default

    lr = d.learning_rate_lora if spec.lora else d.learning_rate_full
    base = spec.base_model or d.base_model
    return JobSpec(
        dataset_id=spec.dataset_id, base_model=base,
        output_model_name=spec.output_model_name or f"{base.partition('@')[0]}-ft",
        zero_stage=pick(spec.zero_stage, d.zero_stage), lora=spec.lora,
        lora_r=pick(spec.lora_r, d.lora_r) if spec.lora else spec.lora_r,
        lora_alpha=pick(spec.lora_alpha, d.lora_alpha) if spec.lora else spec.lora_alpha,
        epochs=pick(spec.epochs, d.epochs), learning_rate=pick(spec.learning_rate, lr),
        micro_batch_size=pick(spec.micro_batch_size, d.micro_batch_size),
        gradient_accumulation=pick(spec.gradient_accumulation, d.gradient_accumulation),
        max_seq_len=pick(spec.max_seq_len, d.max_seq_len), packing=spec.packing,
        response_only_loss=spec.response_only_loss,
        eval_interval_steps=pick(spec.eval_interval_steps, d.eval_interval_steps),
        checkpoint_interval_steps=pick(spec.checkpoint_interval_steps,
                                       d.checkpoint_interval_steps),
        early_stopping_patience=pick(spec.early_stopping_patience, d.early_stopping_patience),
        world_size=pick(spec.world_size, d.world_size), max_steps=spec.max_steps,
        seed=pick(spec.seed, d.seed),
    )


@dataclass(frozen=True)
class Progress:
    """One record of a job's history: a worker progress line or a state change."""

    sequence: int
    kind: str  # step | eval | checkpoint | resumed | state
    data: dict[str, Any]
    at: datetime


@dataclass
class Job:
    job_id: str
    tenant: str
    state: JobState
    spec: JobSpec
    created_at: datetime
    submitted_by: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str = ""
    last_progress: Progress | None = None
    model_name: str = ""
    model_version: int = 0
    attempts: int = 0
    lease_owner: str = ""
    lease_expires_at: datetime | None = None
    cancel_requested_by: str = ""
    # Bytes of JOB_DIR/progress.jsonl already turned into history (exactly once on resume).
    progress_offset: int = 0
    # Process group of the worker (killed before a resume, in case the old one survived).
    worker_pgid: int = 0
    # What the service resolved at submit time (dataset hash, base model folder...).
    resolved: dict[str, Any] = field(default_factory=dict)
