"""The embedding service's own metric: which encoder backend serves (the kit has the rest)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from llmops_embedding.adapters.sentence_transformers import BackendReport

_GAUGES: dict[int, Gauge] = {}


def record_backend(report: BackendReport, registry: CollectorRegistry = REGISTRY) -> Gauge:
    """`llmops_embedding_encoder_info{requested, active, runtime, fallback_reason} 1`.

    An info-style gauge: alert on `fallback_reason != ""` to catch a service that asked for a
    fast backend and runs PyTorch. Labels are names and stable codes only. Called again (the
    backend chosen in the background took over), it replaces the series.
    """
    gauge = _GAUGES.get(id(registry))
    if gauge is None:
        gauge = _GAUGES[id(registry)] = Gauge(
            "llmops_embedding_encoder_info",
            "The encoder backend serving (1), what was requested, and why it fell back if it did",
            ["requested", "active", "runtime", "fallback_reason"], registry=registry)
    gauge.clear()
    gauge.labels(report.requested, report.active, report.runtime,
                 report.fallback_reason or "").set(1)
    return gauge
