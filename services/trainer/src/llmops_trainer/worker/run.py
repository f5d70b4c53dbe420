"""Process entry: distributed set-up, the job, and turning failures into an "error" line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from llmops_trainer.worker import config
from llmops_trainer.worker.progress import ProgressLog

log = logging.getLogger("llmops_trainer.worker")


def die_with_launcher() -> None:
    """SIGKILL this process when its parent (torchrun's agent) dies.

    torchrun starts each worker in a session of its own, so a SIGKILL to the launcher's process
    group (a crashed or killed trainer service) would leave the workers training as orphans,
    racing a restarted job on the same JOB_DIR. SIGTERM needs no help: torchrun forwards it.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl: nobody would ever kill us
        os._exit(1)


def _init_distributed() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment; a bare run is rank 0 of 1."""
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        from llmops_trainer.worker.launch import free_port

        os.environ["MASTER_PORT"] = str(free_port())
    import deepspeed
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    deepspeed.init_distributed(dist_backend="gloo")
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops_trainer.worker")
    parser.add_argument("--job-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    job_dir: Path = args.job_dir.resolve()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    rank = int(os.environ.get("RANK", "0"))
    if "TORCHELASTIC_RUN_ID" in os.environ:  # started by torchrun
        die_with_launcher()
    progress = ProgressLog(job_dir, enabled=rank == 0)
    try:
        spec = config.load(job_dir)
        world_rank, world = _init_distributed()
        if world != spec.world_size:
            reason = f"job.json asks for world_size {spec.world_size}, launched with {world}"
            raise config.InvalidJob([reason])
        from llmops_trainer.worker.train import Trainer

        outcome = Trainer(spec, job_dir, world_rank, world).run()
    except Exception as exc:
        # Every rank may report (the first to fail names the cause); messages carry no data.
        progress.write("error", force=True, message=f"{type(exc).__name__}: {exc}"[:2000])
        log.exception("training job failed")
        return 1
    finally:
        _shutdown()
    return 0 if outcome in ("done", "cancelled") else 1


def _shutdown() -> None:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # pragma: no cover - best effort at exit
        pass
    sys.stdout.flush()
