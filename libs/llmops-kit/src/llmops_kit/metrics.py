"""Prometheus metrics every service shares, and the /metrics endpoint that serves them.

The kit records them where every service passes anyway, so no service has code of its own:
  - GrpcServer (grpc_telemetry.ServerTelemetry): every call of a platform RPC,
  - call_peer: every call to a peer,
  - EventBus / Delivery: records acknowledged and dead-lettered, batch durations,
  - EventBus's lag watcher (consumer_lag.py): high-water mark minus position per partition.
The process collectors of prometheus_client (CPU, memory, open files, GC, Python info) come
with the default registry. Names follow the Prometheus conventions: an `llmops_` prefix,
base units (seconds), `_total` on counters.

Labels carry names and codes only (gRPC service and method, status code, topic, partition,
consumer group, a dead letter's stable reason): never a tenant, a key or request content.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

# RPCs: sub-millisecond reads up to a generation that streams for a minute.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
               30.0, 60.0)
# A consumed batch: a few milliseconds up to a batch retried in place for minutes.
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                 120.0, 300.0)


class KitMetrics:
    """The kit's metrics, registered in `registry` (a private one in unit tests)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = registry
        self.rpc_requests = Counter(
            "llmops_rpc_requests", "RPCs served, by gRPC service, method and status code",
            ["service", "method", "code"], registry=r)
        self.rpc_duration = Histogram(
            "llmops_rpc_duration_seconds", "Time to serve an RPC (to its last message)",
            ["service", "method"], buckets=RPC_BUCKETS, registry=r)
        self.client_requests = Counter(
            "llmops_rpc_client_requests", "RPCs made to peer services, by status code",
            ["service", "method", "code"], registry=r)
        self.client_duration = Histogram(
            "llmops_rpc_client_duration_seconds", "Time a call to a peer service took",
            ["service", "method"], buckets=RPC_BUCKETS, registry=r)
        self.records_processed = Counter(
            "llmops_consumer_records_processed",
            "Records consumed and acknowledged (committed): handled or dead-lettered",
            ["topic", "group"], registry=r)
        self.records_dead_lettered = Counter(
            "llmops_consumer_records_dead_lettered",
            "Records copied to the topic's .dlq topic, by stable reason",
            ["topic", "group", "reason"], registry=r)
        self.batch_duration = Histogram(
            "llmops_consumer_batch_duration_seconds",
            "Time from receiving a batch to acknowledging or rewinding it",
            ["topic", "group"], buckets=BATCH_BUCKETS, registry=r)
        self.batches_rewound = Counter(
            "llmops_consumer_batches_rewound",
            "Batches given up after the retry window and sought back for redelivery",
            ["topic", "group"], registry=r)
        self.consumer_lag = Gauge(
            "llmops_consumer_lag",
            "Records behind: the partition's high-water mark minus the consumer's position",
            ["topic", "partition", "group"], registry=r)


    def child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, remembered: labels() validates and locks on every call,
        which is most of the cost of counting an RPC."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found


@cache
def kit_metrics() -> KitMetrics:
    """The process's metrics, in prometheus_client's default registry (with the process and
    platform collectors). Created on first use, never at import."""
    return KitMetrics(REGISTRY)


def serve_metrics(host: str, port: int,
                  registry: CollectorRegistry = REGISTRY) -> Callable[[], None]:
    """Serves `registry` at http://host:port/metrics from a daemon thread; returns the stop.

    A port that cannot be bound raises OSError: a service that was asked for metrics and
    cannot serve them does not start silently without them.
    """
    server, thread = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
