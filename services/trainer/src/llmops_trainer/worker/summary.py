"""training_summary.json beside the exported weights: metrics, configuration and code version."""

from __future__ import annotations

import json
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops_trainer.worker.train import Trainer

FILE_NAME = "training_summary.json"


def code_version() -> str:
    """`git describe --always --dirty` of the source tree, else the installed package version."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=here, capture_output=True, text=True, timeout=10, check=True,
        )
        if out.stdout.strip():
            return f"git:{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"llmops-trainer=={metadata.version('llmops-trainer')}"
    except metadata.PackageNotFoundError:
        return "unknown"


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def build(trainer: Trainer, last_step: int, early_stopped: bool, seconds: float, fmt: str) -> dict[str, Any]:
    monitor = trainer.monitor
    import deepspeed
    import torch
    import transformers

    return {
        "job_id": trainer.spec.job_id,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "output_format": fmt,
        "metrics": {
            "best_step": monitor.best_step or last_step,
            "best_val_loss": _finite(monitor.best_val_loss),
            "best_perplexity": _finite(2.718281828459045 ** monitor.best_val_loss)
            if monitor.best_val_loss < 700 else None,
            "last_step": last_step,
            "total_steps": trainer.schedule.total_steps,
            "early_stopped": early_stopped,
            "seconds_this_run": round(seconds, 2),
            "evaluations": [
                {"step": p.step, "train_loss": _finite(p.train_loss), "val_loss": _finite(p.val_loss)}
                for p in monitor.history
            ],
        },
        "data": {
            "train_records": trainer.train_stats.records,
            "train_examples": trainer.train_stats.examples,
            "train_sequences": len(trainer.train_set),
            "truncated": trainer.train_stats.truncated,
            "dropped_without_target": trainer.train_stats.dropped_no_target,
            "validation_sequences": len(trainer.val_set),
        },
        "config": trainer.spec.as_dict(),
        "precision": {"dtype": trainer.precision.dtype, "reason": trainer.precision.reason},
        "code_version": code_version(),
        "libraries": {
            "torch": torch.__version__,
            "deepspeed": deepspeed.__version__,
            "transformers": transformers.__version__,
        },
    }


def write(
    folder: Path, trainer: Trainer, last_step: int, early_stopped: bool, seconds: float, fmt: str
) -> None:
    summary = build(trainer, last_step, early_stopped, seconds, fmt)
    (folder / FILE_NAME).write_text(json.dumps(summary, indent=2))
