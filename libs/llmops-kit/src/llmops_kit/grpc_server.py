"""gRPC plumbing on grpc.aio: API-key auth, error mapping, health, reflection, graceful stop.

Every RPC of a service's own API goes through one wrapper that
  1. resolves the caller's principal (tenant, role, key id) from the `x-api-key` metadata
     (UNAUTHENTICATED with MISSING_API_KEY / INVALID_API_KEY / KEY_EXPIRED otherwise) and
     checks the role the method declares in its service's role table (PERMISSION_DENIED
     ROLE_REQUIRED; a method without a declared role is refused: NO_ROLE_DECLARED),
  2. binds the principal, tenant, trace id (`x-trace-id`, or a new one) and the caller's key for logs,
     events and outbound calls made on the caller's behalf,
  3. maps DomainError to its status code with the reason in `x-error-reason` trailing metadata.
Health checking and reflection stay open so probes and grpcurl need no key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from llmops_kit import tracing
from llmops_kit.auth import Principal, Role, acting_as
from llmops_kit.context import bound, current_api_key, current_trace_id, new_trace_id
from llmops_kit.errors import DomainError, InvalidArgument, PermissionDenied
from llmops_kit.grpc_telemetry import ServerTelemetry

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
    """Metadata for a call made on the current caller's behalf: its trace id and API key,
    and the current span's W3C `traceparent` when there is one (llmops_kit.tracing)."""
    md = [(TRACE_ID_HEADER, current_trace_id() or "")]
    key = api_key or current_api_key()
    if key:
        md.append((API_KEY_HEADER, key))
    md.extend(tracing.inject({}).items())
    return tuple(md)


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


class Authenticator(Protocol):
    """Resolves a key to its principal (llmops_kit.key_resolver.KeyResolver)."""

    def resolve(self, key: str | None) -> Principal: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class TenantAuth(grpc.aio.ServerInterceptor):
    """Wraps every method handler of the platform's own services (see module doc)."""

    def __init__(self, auth: Authenticator, roles: Mapping[str, Role]) -> None:
        self.auth = auth
        # "/package.Service/Method" -> the least role that may call it. Shared with GrpcServer,
        # which fills it in add().
        self.roles = roles

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
                self._wrap_unary(handler.unary_unary, parse, method),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, parse, method),
                response_serializer=handler.response_serializer,
            )
        return handler

    def _admit(self, method: str, md: dict[str, str]) -> Principal:
        """The caller's principal if it may call `method`; DomainError otherwise."""
        principal = self.auth.resolve(md.get(API_KEY_HEADER))
        required = self.roles.get(method)
        if required is None:  # fail closed: an RPC nobody declared a role for is refused
            raise PermissionDenied("NO_ROLE_DECLARED",
                                   f"{method} declares no role and is refused")
        if not principal.can(required):
            raise PermissionDenied(
                "ROLE_REQUIRED", f"{method.rsplit('/', 1)[-1]} needs the '{required.value}' "
                f"role; this key ({principal.key_id or 'unnamed'}) has '{principal.role.value}'")
        return principal

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

    async def _enter(self, method: str, context: grpc.aio.ServicerContext
                     ) -> tuple[Principal, dict[str, str]]:
        md = _metadata(context)
        try:
            return self._admit(method, md), md
        except DomainError as exc:
            log.info("rpc refused: %s", exc.reason, extra={"reason": exc.reason, "method": method})
            await self._fail(context, exc)
            raise  # not reached: abort raises

    def _wrap_unary(self, behavior: Callable[..., Any], parse: Parser,
                    method: str) -> Callable[..., Any]:
        async def wrapper(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            principal, md = await self._enter(method, context)
            request = await self._parse(parse, raw, context)
            with bound(principal.tenant, _trace_id(md),
                       md.get(API_KEY_HEADER), context.time_remaining()), \
                    acting_as(principal):
                try:
                    return await behavior(request, context)
                except DomainError as exc:
                    log.info("rpc refused: %s", exc, extra={"reason": exc.reason})
                    await self._fail(context, exc)

        return wrapper

    def _wrap_stream(self, behavior: Callable[..., Any], parse: Parser,
                     method: str) -> Callable[..., Any]:
        async def wrapper(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            principal, md = await self._enter(method, context)
            request = await self._parse(parse, raw, context)
            with bound(principal.tenant, _trace_id(md),
                       md.get(API_KEY_HEADER), context.time_remaining()), \
                    acting_as(principal):
                try:
                    async for item in behavior(request, context):
                        yield item
                except DomainError as exc:
                    await self._fail(context, exc)

        return wrapper


def _trace_id(md: dict[str, str]) -> str:
    """The request's platform trace id: the caller's, else its server span's (so logs and
    traces agree), else a new one."""
    return md.get(TRACE_ID_HEADER) or tracing.current_trace_id() or new_trace_id()


def _declared_methods(full_name: str) -> list[str] | None:
    try:
        service = descriptor_pool.Default().FindServiceByName(full_name)
    except KeyError:
        return None
    return [m.name for m in service.methods]


class GrpcServer:
    """A grpc.aio server with health checking, reflection and the tenant/error wrapper."""

    def __init__(self, host: str, port: int, auth: Authenticator) -> None:
        self.address = f"{host}:{port}"
        self.auth = auth
        self.roles: dict[str, Role] = {}
        self._auth_started = False
        self.server = grpc.aio.server(
            # Telemetry outermost: it sees every outcome, refusals included.
            interceptors=[ServerTelemetry(), TenantAuth(auth, self.roles)],
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
            full_names: Iterable[str], roles: Mapping[str, Role]) -> None:
        """Registers a servicer with its role table: method name -> the least role that may
        call it. Every method of the service must be in the table (checked here, at start-up)."""
        names = list(full_names)
        for full_name in names:
            missing = sorted(set(_declared_methods(full_name) or ()) - set(roles))
            if missing:
                raise ValueError(f"{full_name}: no role declared for {', '.join(missing)}")
            self.roles.update({f"/{full_name}/{m}": role for m, role in roles.items()})
        register(servicer, self.server)
        self._service_names.extend(names)

    async def start_auth(self) -> None:
        """Loads the keys (refusing to start without any, outside development mode)."""
        if not self._auth_started:
            await self.auth.start()
            self._auth_started = True

    async def start(self) -> int:
        await self.start_auth()
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
        if self._auth_started:
            await self.auth.stop()
            self._auth_started = False
