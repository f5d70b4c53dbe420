"""WorkerLauncher on local processes: the worker's command in a process group of its own.

The command is `llmops_trainer.worker.launch.command(job_dir, world_size)` (the training
worker's DeepSpeed launcher or torchrun argv), or a configured template (settings
`worker_command`, with {job_dir}, {world_size} and {python}). Cancel is SIGTERM to the whole
group; if the service itself dies, the launcher gets SIGKILL from the kernel (parent-death
signal) and anything of the group still alive is killed before the job resumes.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
Command = Callable[[Path, int], list[str]]


def _die_with_parent() -> None:
    # Not Linux (no libc.so.6): the resume's kill_group still cleans up.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def worker_command() -> Command:
    """The training worker's own launcher (imported when a job starts, not before)."""
    from llmops_trainer.worker import launch  # type: ignore[attr-defined,unused-ignore]

    result: Command = launch.command
    return result


def template_command(template: Sequence[str]) -> Command:
    def build(job_dir: Path, world_size: int) -> list[str]:
        return [part.format(job_dir=job_dir, world_size=world_size, python=sys.executable)
                for part in template]

    return build


class LocalProcess:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning("worker group %d did not exit after SIGKILL", self.proc.pid)


class ProcessLauncher:
    def __init__(self, command: Command | None = None, threads_per_process: int = 1,
                 extra_env: dict[str, str] | None = None) -> None:
        self._command = command
        self.threads = threads_per_process
        self.extra_env = extra_env or {}

    def command(self, job_dir: Path, world_size: int) -> list[str]:
        build = self._command or worker_command()
        return build(job_dir, world_size)

    def start(self, job_dir: Path, world_size: int, log_path: Path) -> LocalProcess:
        env = os.environ | {"OMP_NUM_THREADS": str(self.threads),
                            "TOKENIZERS_PARALLELISM": "false"} | self.extra_env
        argv = self.command(job_dir, world_size)
        with log_path.open("ab") as out:
            proc = subprocess.Popen(argv, cwd=job_dir, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=_die_with_parent)
        return LocalProcess(proc)

    def kill_group(self, pgid: int) -> None:
        """SIGKILL to group `pgid` if a process of it is still alive (a worker that outlived
        the replica that started it), then waits for the group to go."""
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        log.warning("killed the leftover worker group %d", pgid)
