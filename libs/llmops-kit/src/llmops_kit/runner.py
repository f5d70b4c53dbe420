"""Running a service: its entry point, and serving until SIGTERM/SIGINT, then draining (gRPC
first, then the bus).

Draining has a deadline (`LLMOPS_SHUTDOWN_TIMEOUT_SECONDS`) and a second signal cuts it short:
either way the process writes every thread's and task's stack to stderr and exits with status 1
at once, so a stop step that hangs is named instead of holding the port until a SIGKILL.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

from llmops_kit import tracing
from llmops_kit.key_resolver import StartupRefused
from llmops_kit.logging import configure_logging
from llmops_kit.metrics import serve_metrics
from llmops_kit.settings import ServiceSettings

log = logging.getLogger(__name__)
S = TypeVar("S", bound=ServiceSettings)


async def run_until_signalled(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Coroutine[Any, Any, None]],
    *,
    stop_timeout: float | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal() -> None:
        if stopping.is_set():
            exit_now("a second signal arrived while shutting down")
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await start()
    log.info("service started")
    await stopping.wait()
    log.info("shutting down")
    # Not wait_for: it would cancel the stuck step and then wait for it to end.
    draining = asyncio.ensure_future(stop())
    done, _ = await asyncio.wait({draining}, timeout=stop_timeout)
    if not done:
        exit_now(f"shutting down took longer than {stop_timeout:g} s")
    draining.result()
    log.info("stopped")


def exit_now(reason: str) -> NoReturn:
    """Logs `reason`, writes every thread's and asyncio task's stack to stderr, exits with 1."""
    log.error("exiting without finishing the shutdown: %s (stacks on stderr)", reason)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no running loop
        tasks = set()
    for task in tasks:
        task.print_stack(limit=12, file=sys.stderr)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(1)


def run_service(settings_type: Callable[[], S], serve: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    """A service's `main()`: settings from the environment, JSON logging, serve until stopped."""
    settings = settings_type()
    configure_logging(settings.service_name, settings.log_level)
    stop_metrics = _start_metrics(settings)
    provider = tracing.configure(settings.tracing, settings.service_name)
    try:
        asyncio.run(serve(settings))
    except StartupRefused as exc:
        log.error("refusing to start: %s", exc)
        print(f"{settings.service_name}: refusing to start: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        if provider is not None:
            provider.shutdown()  # exports the spans still queued
        stop_metrics()


def _start_metrics(settings: ServiceSettings) -> Callable[[], None]:
    """The process's /metrics endpoint (metrics.py), unless its port is 0; returns its stop.

    A port that is taken is an error in the log, not a refusal to start: the service's API
    matters more than its metrics, and Prometheus reports the target down (`up == 0`).
    """
    if not settings.metrics_port:
        return lambda: None
    try:
        stop = serve_metrics(settings.metrics_host, settings.metrics_port)
    except OSError as exc:
        log.error("cannot serve metrics on %s:%d (%s); serving without /metrics (set "
                  "metrics_port, 0 disables)", settings.metrics_host, settings.metrics_port,
                  exc.strerror)
        return lambda: None
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    return stop
