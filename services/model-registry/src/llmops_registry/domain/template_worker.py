"""Renders templates in worker processes that are killed when a render takes too long.

The sandbox's checks catch the known blowups quickly; this is the limit nothing bypasses. A
thread cannot be stopped, so a render that loops for hours inside a thread would hold a CPU (and
the GIL the gRPC server needs) forever. A worker process can be killed: each render gets
RENDER_TIMEOUT_SECONDS and, through RLIMIT_AS, WORKER_MEMORY_BYTES of address space; past
either, the worker is killed and replaced and the caller gets TEMPLATE_TOO_EXPENSIVE.
Workers are fresh interpreters (not forks: the parent runs gRPC and Kafka threads), reused.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import multiprocessing.connection
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from llmops_kit.errors import DomainError, Unavailable
from llmops_registry.domain.errors import BadRequest
from llmops_registry.domain.templates import TOO_EXPENSIVE, TemplateDocument

RENDER_TIMEOUT_SECONDS = 0.5
WORKER_MEMORY_BYTES = 768 * 1024 * 1024
WORKERS = 2
START_TIMEOUT_SECONDS = 60.0  # a cold interpreter on a loaded machine; not charged to a render

log = logging.getLogger(__name__)


def _serve(conn: multiprocessing.connection.Connection, memory_bytes: int) -> None:
    """The worker's loop: (template, variables, documents) in, ("ok", text) or an error out."""
    import resource

    from llmops_registry.domain import templates

    with contextlib.suppress(ValueError, OSError):  # a hard limit below ours: keep it
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        conn.send(("ready",))
    except OSError:  # the parent gave up on us (or exited) while we started
        return
    while True:
        try:
            template, variables, documents = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, ...] = ("ok", templates.render_here(template, variables, documents))
        except DomainError as exc:
            reply = ("error", exc.reason, exc.message)
        except MemoryError:
            reply = ("error", TOO_EXPENSIVE, "rendering ran out of memory")
        except Exception as exc:  # the template's fault: reported, worker lives on
            reply = ("error", "RENDER_FAILED", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("error", TOO_EXPENSIVE, "rendering ran out of memory"))


class _Worker:
    """One worker: `python -m llmops_registry.domain.template_worker` on one end of a socketpair.

    A plain subprocess rather than multiprocessing: spawn would re-import the parent's main
    module, which is any script or test runner that happens to render a template.
    """

    def __init__(self, memory_bytes: int) -> None:
        mine, theirs = socket.socketpair()
        fd = theirs.fileno()
        self.process = subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", __name__, str(fd), str(memory_bytes)],
            pass_fds=(fd,), stdin=subprocess.DEVNULL, close_fds=True)
        theirs.close()
        self.conn = multiprocessing.connection.Connection(mine.detach())
        if not self.conn.poll(START_TIMEOUT_SECONDS):
            self.kill()
            raise RuntimeError("template render worker did not start")
        self.conn.recv()

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.conn.close()


class RenderPool:
    """A few reusable workers; render() blocks its (worker) thread until a reply or the timeout."""

    def __init__(self, workers: int = WORKERS, timeout: float = RENDER_TIMEOUT_SECONDS,
                 memory_bytes: int = WORKER_MEMORY_BYTES) -> None:
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(workers):  # all start now, in the background: no render waits for two
            threading.Thread(target=self._replace, name="template-worker-start",
                             daemon=True).start()

    def _start(self) -> _Worker:
        worker = _Worker(self.memory_bytes)
        with self._lock:
            if not self._closed:
                self._all.add(worker)
                return worker
        worker.kill()
        raise RuntimeError("the template render pool is closed")

    def _retire(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.kill()

    def _replace(self) -> None:
        try:
            self._idle.put(self._start())
        except Exception:  # the next render retries the start
            log.exception("template render worker failed to start")
            self._idle.put(None)

    def render(self, template: str, variables: Mapping[str, str],
               documents: Sequence[TemplateDocument] = ()) -> str:
        worker = self._idle.get()
        keep: _Worker | None = None
        started = time.monotonic()
        try:
            if worker is not None and not worker.alive():
                self._retire(worker)
                worker = None
            if worker is None:
                worker = self._start()
            started = time.monotonic()
            worker.conn.send((template, dict(variables), list(documents)))
            if not worker.conn.poll(self.timeout):
                raise BadRequest(TOO_EXPENSIVE, f"rendering took longer than {self.timeout} s")
            reply: tuple[Any, ...] = worker.conn.recv()
            keep = worker
        except (EOFError, OSError) as exc:  # killed by the OS (memory) or crashed
            raise BadRequest(TOO_EXPENSIVE, "rendering exceeded the worker's limits") from exc
        except RuntimeError as exc:
            raise Unavailable("RENDER_UNAVAILABLE", str(exc)) from exc
        finally:
            if keep is not None:
                self._idle.put(keep)
            else:
                if worker is not None:
                    log.warning("template render worker killed after %.2f s",
                                time.monotonic() - started)
                    self._retire(worker)
                # a fresh worker in the background, so the next render does not wait for it
                threading.Thread(target=self._replace, name="template-worker-start",
                                 daemon=True).start()
        if reply[0] == "ok":
            return str(reply[1])
        raise BadRequest(str(reply[1]), str(reply[2]))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.kill()


@functools.cache
def pool() -> RenderPool:
    """The process's pool, created on first render (nothing starts at import time)."""
    created = RenderPool()
    atexit.register(created.close)
    return created


if __name__ == "__main__":
    _serve(multiprocessing.connection.Connection(int(sys.argv[1])), int(sys.argv[2]))
