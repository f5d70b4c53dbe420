"""GrpcServer over a real socket: auth, tenant binding, error mapping, malformed requests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops_kit.auth import Principal, Role
from llmops_kit.context import bound, current_api_key, current_tenant, current_trace_id
from llmops_kit.errors import InvalidArgument, Unavailable
from llmops_kit.grpc_client import call_peer
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.key_resolver import KeyResolver
from llmops_kit.testing import error_reason

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
SERVICE = "llmops.embedding.v1.EmbeddingService"


class EchoServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    """Reports what the kit bound for the call; refuses the text 'bad'."""

    async def GetModelInfo(self, request: embedding_pb2.GetModelInfoRequest, context: object
                           ) -> embedding_pb2.GetModelInfoResponse:
        return embedding_pb2.GetModelInfoResponse(model=f"{current_tenant()}")

    async def Embed(self, request: embedding_pb2.EmbedRequest, context: object
                    ) -> embedding_pb2.EmbedResponse:
        if list(request.texts) == ["bad"]:
            raise InvalidArgument("BAD_TEXT", "the text 'bad' is refused")
        return embedding_pb2.EmbedResponse(
            model=f"{current_tenant()}|{current_trace_id()}|{current_api_key()}")


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    keys = {"k-acme": Principal("acme", Role.MAINTAINER, "acme-m"),
            "k-globex": Principal("globex", Role.MAINTAINER, "globex-m"),
            "k-member": Principal("acme", Role.MEMBER, "acme-member")}
    server = GrpcServer("127.0.0.1", 0, KeyResolver(None, keys))
    server.add(embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server, EchoServicer(),
               [SERVICE], {"Embed": Role.MEMBER, "GetModelInfo": Role.MAINTAINER})
    port = await server.start()
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield ch
    await ch.close()
    await server.stop(0)


async def test_key_resolves_tenant_and_trace_id_is_kept(channel: grpc.aio.Channel) -> None:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    resp = await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]),
                            metadata=(("x-api-key", "k-globex"), ("x-trace-id", "t-42")))
    assert resp.model == "globex|t-42|k-globex"
    resp = await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]),
                            metadata=(("x-api-key", "k-acme"),))
    tenant, trace, _ = resp.model.split("|")
    assert tenant == "acme" and len(trace) == 32  # a new trace id when none was sent


@pytest.mark.parametrize(("md", "reason"), [((), "MISSING_API_KEY"),
                                            ((("x-api-key", "nope"),), "INVALID_API_KEY")])
async def test_unauthenticated(channel: grpc.aio.Channel, md: tuple, reason: str) -> None:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]), metadata=md)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(err.value) == reason


async def test_domain_error_maps_to_status_with_reason(channel: grpc.aio.Channel) -> None:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Embed(embedding_pb2.EmbedRequest(texts=["bad"]),
                         metadata=(("x-api-key", "k-acme"),))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(err.value) == "BAD_TEXT"
    assert err.value.details() == "BAD_TEXT: the text 'bad' is refused"


async def test_malformed_protobuf_is_invalid_argument_and_server_keeps_serving(
    channel: grpc.aio.Channel,
) -> None:
    raw = channel.unary_unary(f"/{SERVICE}/Embed")  # no serializers: bytes on the wire
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw(b"\x0a\xff\xff\xff\xff\x0f", metadata=(("x-api-key", "k-acme"),))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(err.value) == "MALFORMED_REQUEST"
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    ok = await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]),
                          metadata=(("x-api-key", "k-acme"),))
    assert ok.model.startswith("acme|")


async def test_health_and_reflection_need_no_key(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    resp = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = set()
    async for r in refl.ServerReflectionInfo(one()):
        names = {s.name for s in r.list_services_response.service}
    assert SERVICE in names and "grpc.health.v1.Health" in names


async def test_role_table_is_enforced_with_a_reason(channel: grpc.aio.Channel) -> None:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    ok = await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]),
                          metadata=(("x-api-key", "k-member"),))
    assert ok.model.startswith("acme|")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetModelInfo(embedding_pb2.GetModelInfoRequest(),
                                metadata=(("x-api-key", "k-member"),))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(err.value) == "ROLE_REQUIRED"
    assert err.value.details() == ("ROLE_REQUIRED: GetModelInfo needs the 'maintainer' role; "
                                   "this key (acme-member) has 'member'")
    info = await stub.GetModelInfo(embedding_pb2.GetModelInfoRequest(),
                                   metadata=(("x-api-key", "k-acme"),))
    assert info.model == "acme"


async def test_a_service_without_a_role_for_every_method_is_refused() -> None:
    server = GrpcServer("127.0.0.1", 0, KeyResolver(None, {}))
    with pytest.raises(ValueError, match="no role declared for GetModelInfo"):
        server.add(embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server, EchoServicer(),
                   [SERVICE], {"Embed": Role.MEMBER})

async def test_call_peer_over_a_socket_carries_reason_and_caller(channel: grpc.aio.Channel
                                                                  ) -> None:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    with bound("globex", "t-7", "k-globex"):
        ok = await call_peer(stub.Embed, embedding_pb2.EmbedRequest(texts=["x"]),
                             peer="embedding", timeout=5, unavailable="EMBEDDING_UNAVAILABLE")
        assert ok.model == "globex|t-7|k-globex"
        with pytest.raises(InvalidArgument) as err:
            await call_peer(stub.Embed, embedding_pb2.EmbedRequest(texts=["bad"]),
                            peer="embedding", timeout=5, unavailable="EMBEDDING_UNAVAILABLE")
    assert err.value.reason == "BAD_TEXT"
    assert err.value.message == "embedding: INVALID_ARGUMENT: the text 'bad' is refused"


async def test_call_peer_to_nobody_is_unavailable() -> None:
    async with grpc.aio.insecure_channel("127.0.0.1:1") as ch:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(ch)
        with pytest.raises(Unavailable) as err:
            await call_peer(stub.Embed, embedding_pb2.EmbedRequest(texts=["x"]),
                            peer="embedding", timeout=5, unavailable="EMBEDDING_UNAVAILABLE")
    assert err.value.reason == "EMBEDDING_UNAVAILABLE"
