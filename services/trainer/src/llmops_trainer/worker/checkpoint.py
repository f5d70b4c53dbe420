"""Checkpoints under JOB_DIR/checkpoints/step-NNNNNN/ and resuming from the latest complete one.

A checkpoint is DeepSpeed's save_checkpoint (module, optimizer and scheduler state, partitioned
per rank under ZeRO) plus one file per rank with its RNG states, and the worker's own state
(step = the data-loader position, evaluation history) in DeepSpeed's client_state. The
COMPLETE marker is written by rank 0 only after every rank has finished writing (a barrier), so
a job killed mid-save resumes from the previous checkpoint, never from a partial one.

LoRA jobs leave the frozen base weights out (`exclude_frozen_parameters`): they are reloaded
from the base model folder, which the job does not change, so a checkpoint is megabytes.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

MARKER = "COMPLETE"
_TAG = re.compile(r"^step-(\d+)$")
KEEP = 1  # complete checkpoints kept besides the newest


def tag(step: int) -> str:
    return f"step-{step:06d}"


def complete_steps(root: Path) -> list[int]:
    """Steps of the checkpoints whose marker exists, oldest first."""
    if not root.is_dir():
        return []
    steps = []
    for child in root.iterdir():
        match = _TAG.match(child.name)
        if match and (child / MARKER).is_file():
            steps.append(int(match.group(1)))
    return sorted(steps)


def latest_complete(root: Path) -> int | None:
    steps = complete_steps(root)
    return steps[-1] if steps else None


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save(engine: Any, root: Path, step: int, client_state: dict[str, Any], rank: int, lora: bool) -> None:
    """Collective: every rank calls it. Returns once the checkpoint is marked complete."""
    import torch
    import torch.distributed as dist

    name = tag(step)
    engine.save_checkpoint(
        str(root), tag=name, client_state=client_state, exclude_frozen_parameters=lora
    )
    torch.save(rng_state(), root / name / f"worker_rank{rank}.pt")
    dist.barrier()
    if rank == 0:
        (root / name / MARKER).write_text(json.dumps({"step": step}))
        for old in complete_steps(root)[: -(KEEP + 1)]:
            shutil.rmtree(root / tag(old), ignore_errors=True)
        # Partial checkpoints of a killed save (no marker, older than this one) go too.
        for child in root.iterdir():
            match = _TAG.match(child.name)
            if match and int(match.group(1)) < step and not (child / MARKER).exists():
                shutil.rmtree(child, ignore_errors=True)
    dist.barrier()


def load(engine: Any, root: Path, step: int, rank: int) -> dict[str, Any]:
    """Restores engine, RNG and returns the client_state saved at `step`."""
    import torch

    name = tag(step)
    path, client_state = engine.load_checkpoint(
        str(root),
        tag=name,
        load_module_strict=False,
        load_optimizer_states=True,
        load_lr_scheduler_states=True,
    )
    if path is None:
        raise RuntimeError(f"DeepSpeed could not load checkpoint {name}")
    state = torch.load(root / name / f"worker_rank{rank}.pt", weights_only=False)
    set_rng_state(state)
    return dict(client_state or {})
