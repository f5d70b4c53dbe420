"""Metrics and spans for every RPC a platform service serves, and for every call to a peer.

`ServerTelemetry` is GrpcServer's outermost interceptor, so it sees every outcome of a
platform RPC, a refused key or a malformed request included: it counts the call under its
status code, times it, and runs it inside a SERVER span that continues the caller's trace
(W3C `traceparent` metadata, else the platform's `x-trace-id`). Health checks and reflection
are left out: probes every second would drown the traffic they are meant to watch.

`client_call` does the same around call_peer: a CLIENT span whose context goes out in the
call's metadata, and the client-side counters.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import grpc
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from llmops_kit import tracing
from llmops_kit.metrics import KitMetrics, kit_metrics

# Not measured: probes and tooling, open to everyone (grpc_server.OPEN_SERVICES).
UNMEASURED = ("grpc.health.v1.Health", "grpc.reflection.")
REASON_TRAILER = "x-error-reason"
# Server codes OpenTelemetry's RPC conventions count as the server's own error.
SERVER_ERRORS = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED,
                           grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL,
                           grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS})
_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def split_method(full_method: str) -> tuple[str, str]:
    """"/llmops.safety.v1.SafetyService/Check" -> ("llmops.safety.v1.SafetyService", "Check")."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or "unknown"


def status_of(context: grpc.aio.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with: what the handler set or aborted with; OK when it returned
    without one, CANCELLED when the client went away, UNKNOWN for anything it raised."""
    code = context.code()
    if isinstance(code, int):
        code = _BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)
    if isinstance(code, grpc.StatusCode):
        return code
    if exc is None:
        return grpc.StatusCode.OK
    if isinstance(exc, BaseException) and type(exc).__name__ == "CancelledError":
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


def _reason(context: grpc.aio.ServicerContext) -> str | None:
    try:
        trailers = context.trailing_metadata() or ()
    except Exception:  # not every grpc build exposes the trailers it will send
        return None
    return next((v for k, v in trailers if k == REASON_TRAILER and isinstance(v, str)), None)


def _end(span: Span, code: grpc.StatusCode, reason: str | None, server: bool) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if reason:
        span.set_attribute("llmops.error.reason", reason)
    if code is not grpc.StatusCode.OK and (not server or code in SERVER_ERRORS):
        span.set_status(Status(StatusCode.ERROR, code.name))


def _server_span(full: str, service: str, method: str,
                 context: grpc.aio.ServicerContext) -> AbstractContextManager[Span]:
    """The SERVER span of a call, continuing the caller's trace."""
    metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    return tracing.tracer().start_as_current_span(
        full.lstrip("/"), context=tracing.parent(tracing.remote_context(metadata)),
        kind=SpanKind.SERVER, record_exception=False, set_status_on_exception=False,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method})


class ServerTelemetry(grpc.aio.ServerInterceptor):
    """Counts, times and traces the platform's RPCs (see module doc)."""

    def __init__(self, metrics: KitMetrics | None = None) -> None:
        self.metrics = metrics or kit_metrics()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        full = handler_call_details.method or ""
        if handler is None or full.lstrip("/").startswith(UNMEASURED):
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, full),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, full),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return handler  # the platform serves no client-streaming RPCs

    @contextmanager
    def _observe(self, full: str, context: grpc.aio.ServicerContext) -> Iterator[None]:
        service, method = split_method(full)
        started = time.perf_counter()
        # Tracing off: no span at all, not even a no-op one (half the cost of a call).
        with _server_span(full, service, method, context) if tracing.active() \
                else nullcontext() as span:
            failure: BaseException | None = None
            try:
                yield
            except BaseException as exc:
                failure = exc
                raise
            finally:
                code = status_of(context, failure)
                if span is not None:
                    _end(span, code, _reason(context), server=True)
                m = self.metrics
                m.child(m.rpc_requests, service, method, code.name).inc()
                m.child(m.rpc_duration, service, method).observe(time.perf_counter() - started)

    def _unary(self, behavior: Callable[..., Any], full: str) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with self._observe(full, context):
                return await behavior(request, context)

        return wrapper

    def _stream(self, behavior: Callable[..., Any], full: str) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            with self._observe(full, context):
                async for item in behavior(request, context):
                    yield item

        return wrapper


def rpc_method(rpc: Any) -> str:
    """"/package.Service/Method" of a grpc.aio stub's multi-callable (its `_method`, which
    grpc keeps as bytes); "" for anything else."""
    method = getattr(rpc, "_method", b"")
    return method.decode() if isinstance(method, bytes) else str(method or "")


@contextmanager
def client_call(rpc: Any, metrics: KitMetrics | None = None) -> Iterator[None]:
    """Around one call to a peer: a CLIENT span when tracing is on (current while the call's
    metadata is built, so its context is what goes out) and the client-side metrics; the
    outcome is the AioRpcError's code, or OK."""
    m = metrics or kit_metrics()
    full = rpc_method(rpc) or "/unknown/unknown"
    service, method = split_method(full)
    started = time.perf_counter()
    with tracing.tracer().start_as_current_span(
            full.lstrip("/"), kind=SpanKind.CLIENT, record_exception=False,
            set_status_on_exception=False,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}) \
            if tracing.active() else nullcontext() as span:
        code = grpc.StatusCode.OK
        try:
            yield
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            reason = next((v for k, v in exc.trailing_metadata() or ()
                           if k == REASON_TRAILER and isinstance(v, str)), None)
            if reason and span is not None:
                span.set_attribute("llmops.error.reason", reason)
            raise
        except BaseException:
            code = grpc.StatusCode.UNKNOWN
            raise
        finally:
            if span is not None:
                _end(span, code, None, server=False)
            m.child(m.client_requests, service, method, code.name).inc()
            m.child(m.client_duration, service, method).observe(time.perf_counter() - started)
