"""gRPC plumbing on grpc.aio: API-key auth, error mapping, health, reflection, graceful stop.

Every RPC of a service's own API goes through one wrapper that
  1. resolves the caller's tenant from the `x-api-key` metadata (UNAUTHENTICATED otherwise),
  2. binds tenant, trace id (`x-trace-id`, or a new one) and the caller's key for logs,
     events and outbound calls made on the caller's behalf,
  3. maps DomainError to its status code with the reason in `x-error-reason` trailing metadata.
Health checking and reflection stay open so probes and grpcurl need no key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from llmops_kit.auth import Principal, Role, principal_var
from llmops_kit.context import bound, current_api_key, current_trace_id, new_trace_id
from llmops_kit.errors import DomainError, InvalidArgument

log = logging.getLogger(__name__)

API_KEY_HEADER = "x-api-key"
TRACE_ID_HEADER = "x-trace-id"
REASON_TRAILER = "x-error-reason"
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")
Parser = Callable[[bytes], Any] | None


def error_reason(exc: Any) -> str | None:
    """The stable reason a platform service put in the `x-error-reason` trailer of a failure."""
    return next((v for k, v in exc.trailing_metadata() or () if k == REASON_TRAILER), None)


def caller_metadata(api_key: str | None = None) -> tuple[tuple[str, str], ...]:
    """Metadata for a call made on the current caller's behalf: its trace id and API key."""
    md = [(TRACE_ID_HEADER, current_trace_id() or "")]
    key = api_key or current_api_key()
    if key:
        md.append((API_KEY_HEADER, key))
    return tuple(md)


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


@contextmanager
def _as(principal: Principal) -> Iterator[None]:
    token = principal_var.set(principal)
    try:
        yield
    finally:
        principal_var.reset(token)


class TenantAuth(grpc.aio.ServerInterceptor):
    """Wraps every method handler of the platform's own services (see module doc)."""

    def __init__(self, api_keys: dict[str, str]) -> None:
        self.api_keys = api_keys

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.lstrip("/").startswith(OPEN_SERVICES):
            return handler
        # Requests arrive as raw bytes and are parsed inside the wrapper, so a malformed
        # protobuf gets INVALID_ARGUMENT with a reason instead of grpc's generic INTERNAL.
        parse = handler.request_deserializer
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, parse),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, parse),
                response_serializer=handler.response_serializer,
            )
        return handler

    def _principal(self, md: dict[str, str]) -> Principal | None:
        key = md.get(API_KEY_HEADER)
        owner = self.api_keys.get(key) if key else None
        if owner is None:
            return None
        # `tenant` or `tenant:role`; a key without a role administers its own tenant.
        tenant, _, role = owner.partition(":")
        return Principal(tenant, Role(role) if role else Role.MAINTAINER)

    async def _deny(self, context: grpc.aio.ServicerContext, md: dict[str, str]) -> None:
        reason = "MISSING_API_KEY" if API_KEY_HEADER not in md else "INVALID_API_KEY"
        context.set_trailing_metadata(((REASON_TRAILER, reason),))
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            f"{reason}: send a valid key in the '{API_KEY_HEADER}' metadata",
        )

    async def _fail(self, context: grpc.aio.ServicerContext, exc: DomainError) -> None:
        context.set_trailing_metadata(((REASON_TRAILER, exc.reason),))
        await context.abort(exc.code, f"{exc.reason}: {exc.message}")

    async def _parse(self, parse: Parser, raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        if parse is None:
            return raw
        try:
            return parse(raw)
        except Exception as exc:  # DecodeError, or anything a custom deserializer raises
            await self._fail(context, InvalidArgument(
                "MALFORMED_REQUEST", f"request is not a valid protobuf message: {exc}"))

    def _wrap_unary(self, behavior: Callable[..., Any], parse: Parser) -> Callable[..., Any]:
        async def wrapper(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            md = _metadata(context)
            principal = self._principal(md)
            if principal is None:
                await self._deny(context, md)
                return
            request = await self._parse(parse, raw, context)
            with bound(principal.tenant, md.get(TRACE_ID_HEADER) or new_trace_id(),
                       md.get(API_KEY_HEADER), context.time_remaining()), \
                    _as(principal):
                try:
                    return await behavior(request, context)
                except DomainError as exc:
                    log.info("rpc refused: %s", exc, extra={"reason": exc.reason})
                    await self._fail(context, exc)

        return wrapper

    def _wrap_stream(self, behavior: Callable[..., Any], parse: Parser) -> Callable[..., Any]:
        async def wrapper(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            md = _metadata(context)
            principal = self._principal(md)
            if principal is None:
                await self._deny(context, md)
                return
            request = await self._parse(parse, raw, context)
            with bound(principal.tenant, md.get(TRACE_ID_HEADER) or new_trace_id(),
                       md.get(API_KEY_HEADER), context.time_remaining()), \
                    _as(principal):
                try:
                    async for item in behavior(request, context):
                        yield item
                except DomainError as exc:
                    await self._fail(context, exc)

        return wrapper


class GrpcServer:
    """A grpc.aio server with health checking, reflection and the tenant/error wrapper."""

    def __init__(self, host: str, port: int, api_keys: dict[str, str]) -> None:
        self.address = f"{host}:{port}"
        self.server = grpc.aio.server(
            interceptors=[TenantAuth(api_keys)],
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.health = health.aio.HealthServicer()
        self._service_names: list[str] = [reflection.SERVICE_NAME, health.SERVICE_NAME]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port: int | None = None

    def add(self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any,
            full_names: Iterable[str]) -> None:
        register(servicer, self.server)
        self._service_names.extend(full_names)

    async def start(self) -> int:
        reflection.enable_server_reflection(self._service_names, self.server)
        self.port = self.server.add_insecure_port(self.address)
        if not self.port:
            raise RuntimeError(f"cannot bind gRPC on {self.address}")
        await self.server.start()
        await self.set_serving(True)
        log.info("gRPC listening on %s", self.address)
        return self.port

    async def set_serving(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ["", *self._service_names]:
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        # Readiness goes first so load balancers stop sending, then in-flight calls drain.
        await self.set_serving(False)
        await self.server.stop(grace)
