"""The argv that runs the training worker (interface 2): torchrun over 1 or 2 CPU processes.

Why torchrun (`python -m torch.distributed.run`) rather than the `deepspeed` launcher: it ships
with torch and runs with this interpreter (no console script on PATH to find), starts exactly
`--nproc_per_node` local processes (the `deepspeed` runner sizes a CPU "node" from its NUMA/core
layout and wants a hostfile or pdsh for anything else), exports RANK/LOCAL_RANK/WORLD_SIZE/
MASTER_ADDR/MASTER_PORT, which `deepspeed.init_distributed` reads as they are, and forwards
SIGTERM to the workers, which turn it into a clean cancel. The workers pick gloo themselves.

MASTER_PORT is a free port below 32768: Linux hands out ephemeral (outgoing) ports from 32768
up, so a port below that range that is free now is not taken by some client's connection
between this check and the rendezvous.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import sys
from pathlib import Path

from llmops_trainer.worker.config import MAX_WORLD_SIZE

PORT_RANGE = (20000, 32767)
# One thread per process: two processes on two cores, no oversubscription from OpenMP.
THREADS_PER_PROCESS = 1


def free_port(low: int = PORT_RANGE[0], high: int = PORT_RANGE[1], attempts: int = 200) -> int:
    """A TCP port in [low, high] that nothing listens on or is bound to on 127.0.0.1."""
    rng = random.Random()
    for _ in range(attempts):
        port = rng.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port between {low} and {high} after {attempts} attempts")


def extensions_dir() -> str:
    """Where DeepSpeed's JIT-compiled ops go: $TORCH_EXTENSIONS_DIR, else one folder per
    interpreter prefix under ~/.cache/torch_extensions. The op's build file names the
    virtualenv's include folders, so virtualenvs sharing torch's default folder rebuild the
    shared-memory comm op over each other (minutes each time on two busy cores)."""
    configured = os.environ.get("TORCH_EXTENSIONS_DIR")
    if configured:
        return configured
    digest = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    return str(Path.home() / ".cache" / "torch_extensions" / f"llmops-{digest}")


def command(job_dir: Path, world_size: int) -> list[str]:
    """argv running `python -m llmops_trainer.worker --job-dir JOB_DIR` on `world_size` processes.

    The caller should start it in a new process group (`start_new_session=True`), so that
    SIGTERM/SIGKILL to that group reach the launcher and every worker.
    """
    if not 1 <= world_size <= MAX_WORLD_SIZE:
        raise ValueError(f"world_size must be between 1 and {MAX_WORLD_SIZE}, not {world_size}")
    return [
        "env",
        f"OMP_NUM_THREADS={THREADS_PER_PROCESS}",
        f"TORCH_EXTENSIONS_DIR={extensions_dir()}",
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        f"--nproc_per_node={world_size}",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        "-m",
        "llmops_trainer.worker",
        "--job-dir",
        str(Path(job_dir).resolve()),
    ]
