"""Prometheus metrics under TGI's names (tgi_*), in a registry per app so tests can build several."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from llmops_generation.domain.batcher import StepObserver

CONTENT_TYPE = CONTENT_TYPE_LATEST
_TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_SECOND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tgi_request_count", "Requests received", ["route"], registry=r)
        self.success = Counter("tgi_request_success", "Requests that completed", ["route"], registry=r)
        self.failure = Counter("tgi_request_failure", "Failed requests", ["route", "err"], registry=r)
        self.duration = Histogram(
            "tgi_request_duration", "Request latency (s)", ["route"], buckets=_SECOND_BUCKETS, registry=r
        )
        self.first_token = Histogram(
            "tgi_request_queue_duration", "Time to first token (s)", buckets=_SECOND_BUCKETS, registry=r
        )
        self.input_length = Histogram(
            "tgi_request_input_length", "Prompt tokens", buckets=_TOKEN_BUCKETS, registry=r
        )
        self.generated = Histogram(
            "tgi_request_generated_tokens", "Generated tokens", buckets=_TOKEN_BUCKETS, registry=r
        )
        self.generated_total = Counter("tgi_generated_tokens", "Tokens generated", ["model"], registry=r)
        self.batch_size = Gauge("tgi_batch_current_size", "Sequences in the batch", ["model"], registry=r)
        self.queue_size = Gauge("tgi_queue_size", "Requests waiting", ["model"], registry=r)
        self.forward = Histogram(
            "tgi_batch_forward_duration",
            "Duration of one decoding step (s)",
            ["model"],
            buckets=_SECOND_BUCKETS,
            registry=r,
        )
        # Not a TGI metric: prompt tokens taken from a cached prefix's KV cells vs computed.
        self.prefix_cache_tokens = Counter(
            "generation_prefix_cache_tokens",
            "Prompt tokens of admitted sequences, by whether a cached prefix supplied them",
            ["model", "outcome"],
            registry=r,
        )
        self.forward_size = Histogram(
            "tgi_batch_forward_size", "Sequences per step", ["model"], buckets=_TOKEN_BUCKETS, registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observer(self, model: str) -> StepObserver:
        return _ModelObserver(self, model)

    def track(self, route: str) -> RequestTimer:
        self.requests.labels(route).inc()
        return RequestTimer(self, route)


@dataclass
class _ModelObserver:
    metrics: Metrics
    model: str

    def on_step(self, batch_size: int, admitted: int, prefill_tokens: int, seconds: float) -> None:
        self.metrics.forward.labels(self.model).observe(seconds)
        self.metrics.forward_size.labels(self.model).observe(batch_size)
        self.metrics.generated_total.labels(self.model).inc(batch_size)

    def on_prefill(self, reused: int, computed: int) -> None:
        self.metrics.prefix_cache_tokens.labels(self.model, "reused").inc(reused)
        self.metrics.prefix_cache_tokens.labels(self.model, "computed").inc(computed)

    def on_queue(self, waiting: int, running: int) -> None:
        self.metrics.queue_size.labels(self.model).set(waiting)
        self.metrics.batch_size.labels(self.model).set(running)


@dataclass
class RequestTimer:
    metrics: Metrics
    route: str
    started: float = field(default_factory=time.perf_counter)
    _first: bool = False

    def first_token(self) -> None:
        if not self._first:
            self._first = True
            self.metrics.first_token.observe(time.perf_counter() - self.started)

    def succeeded(self, input_length: int, generated_tokens: int) -> None:
        self.metrics.success.labels(self.route).inc()
        self.metrics.duration.labels(self.route).observe(time.perf_counter() - self.started)
        self.metrics.input_length.observe(input_length)
        self.metrics.generated.observe(generated_tokens)

    def failed(self, error_type: str) -> None:
        self.metrics.failure.labels(self.route, error_type).inc()
