"""Running a service: its entry point, and serving until SIGTERM/SIGINT, then draining (gRPC
first, then the bus)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from llmops_kit import tracing
from llmops_kit.key_resolver import StartupRefused
from llmops_kit.logging import configure_logging
from llmops_kit.metrics import serve_metrics
from llmops_kit.settings import ServiceSettings

log = logging.getLogger(__name__)
S = TypeVar("S", bound=ServiceSettings)


async def run_until_signalled(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await start()
    log.info("service started")
    await stopping.wait()
    log.info("shutting down")
    await stop()
    log.info("stopped")


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
