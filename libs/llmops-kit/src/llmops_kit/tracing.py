"""OpenTelemetry traces: configured from the standard OTEL_* variables, off unless one is set.

With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, `configure`
installs a TracerProvider with the OTLP gRPC exporter behind a batch span processor; the
service name is OTEL_SERVICE_NAME, else the service's own name. Everything else the SDK reads
itself (OTEL_EXPORTER_OTLP_HEADERS / _INSECURE / _CERTIFICATE, OTEL_TRACES_SAMPLER,
OTEL_BSP_*, OTEL_RESOURCE_ATTRIBUTES). Unset, nothing is installed and the kit starts no spans
at all (`active()` is False), so tracing costs nothing.

Context travels as W3C `traceparent` (gRPC metadata, Kafka headers). The platform's own trace
id (`x-trace-id`, the envelope's `trace_id`, logged on every line) is 32 hex digits like an
OpenTelemetry trace id, and the two are kept equal: a call or event that carries only the
platform id continues that trace, and a request that arrives without one is logged under the
trace id of its server span.

Span attributes are names, ids, sizes and codes only: never request content, keys or tenants.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

TRACE_ID_HEADER = "x-trace-id"  # the platform's own (grpc_server, events)
MAX_LINKS = 32  # a batch span links at most this many producer traces


class TracingSettings(BaseSettings):
    """The standard OpenTelemetry variables that decide whether traces are sent (no prefix)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP gRPC endpoint, e.g. http://collector:4317; unset: off")
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, description="the same for traces only; wins over the one above")
    otel_service_name: str | None = None
    otel_sdk_disabled: bool = False
    otel_traces_exporter: str | None = Field(
        default=None, description="'none' turns trace export off whatever the endpoint")

    @property
    def endpoint(self) -> str | None:
        return self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint) and not self.otel_sdk_disabled \
            and (self.otel_traces_exporter or "otlp").strip().lower() != "none"


def configure(settings: TracingSettings, service_name: str) -> TracerProvider | None:
    """Installs the process's TracerProvider when an endpoint is configured; returns it (shut
    it down on exit to flush what is queued) or None when tracing stays off."""
    if not settings.enabled:
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; ours is the default.
    attributes = {} if settings.otel_service_name else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.endpoint)))
    trace.set_tracer_provider(provider)
    log.info("sending traces over OTLP", extra={"otlp_endpoint": settings.endpoint})
    return provider


@cache
def tracer() -> trace.Tracer:
    """The kit's tracer (a proxy: no-op until `configure` installs a provider)."""
    return trace.get_tracer("llmops_kit")


def active() -> bool:
    """Whether a real TracerProvider is installed (spans are recorded and exported)."""
    return not isinstance(trace.get_tracer_provider(),
                          trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits, or None outside any trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _trace_id(value: str | None) -> int | None:
    """A platform trace id that can serve as an OpenTelemetry one (32 hex digits, not 0)."""
    if not value or len(value) != 32:
        return None
    try:
        number = int(value, 16)
    except ValueError:
        return None
    return number or None


def _continuing(trace_id: int) -> SpanContext:
    # The platform id names the trace but no span of it: a random parent id keeps the span in
    # that trace (backends show its parent as "not received").
    return SpanContext(trace_id=trace_id, span_id=random.getrandbits(64) or 1, is_remote=True,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED))


def remote_context(carrier: Mapping[str, str]) -> SpanContext | None:
    """The caller's span context: its `traceparent`, else its platform `x-trace-id`."""
    ctx = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    if ctx.is_valid:
        return ctx
    trace_id = _trace_id(carrier.get(TRACE_ID_HEADER))
    return _continuing(trace_id) if trace_id else None


def parent(span_context: SpanContext | None) -> otel_context.Context:
    """A context whose parent is `span_context` (an empty one, a new root, for None)."""
    if span_context is None:
        return otel_context.Context()
    return trace.set_span_in_context(NonRecordingSpan(span_context), otel_context.Context())


def inject(carrier: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Adds the current span's `traceparent` (and `tracestate`) to `carrier`; nothing outside
    a trace."""
    propagate.inject(carrier)
    return carrier


def producers(records: Iterable[Any]) -> list[SpanContext]:
    """The distinct producer contexts of Kafka records (their `traceparent`, else their
    `x-trace-id` headers), at most MAX_LINKS + 1. Headers are compared as bytes and only
    distinct ones parsed: a batch from one request costs one parse, not one per record."""
    distinct: dict[tuple[bytes | None, bytes | None], None] = {}
    for record in records:
        traceparent = trace_id = None
        for key, value in record.headers or ():
            if key == "traceparent":
                traceparent = value
            elif key == TRACE_ID_HEADER:
                trace_id = value
        if traceparent or trace_id:
            distinct.setdefault((traceparent, trace_id))
            if len(distinct) > MAX_LINKS:
                break
    contexts = []
    for traceparent, trace_id in distinct:
        carrier = {k: v.decode("utf-8", "replace") for k, v in
                   (("traceparent", traceparent), (TRACE_ID_HEADER, trace_id)) if v}
        ctx = remote_context(carrier)
        if ctx is not None:
            contexts.append(ctx)
    return contexts


@contextmanager
def consume_span(topic: str, group: str,
                 producers: Iterable[SpanContext | None]) -> Iterator[trace.Span]:
    """The span of one consumed batch (OpenTelemetry messaging conventions). When all of the
    batch comes from one trace it continues that trace; otherwise it links to each one.
    Tracing off: no span (an invalid one that records nothing, set as nobody's parent)."""
    if not active():
        yield trace.INVALID_SPAN
        return
    distinct = list({(c.trace_id, c.span_id): c for c in producers if c is not None}.values())
    links = [Link(c) for c in distinct[:MAX_LINKS]] if len(distinct) > 1 else []
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": group,
    }
    with tracer().start_as_current_span(
            f"process {topic}", context=parent(distinct[0] if len(distinct) == 1 else None),
            kind=SpanKind.CONSUMER, links=links, attributes=attributes) as span:
        yield span
