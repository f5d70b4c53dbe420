"""RegistryClient resolves aliases for the caller's tenant and forgets only what an alias event
changed: a real gRPC socket to a stand-in registry that answers per API key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from llmops.registry.v1 import registry_pb2 as pb
from llmops.registry.v1 import registry_pb2_grpc
from llmops_inference.adapters.registry import RegistryClient
from llmops_inference.api import events as event_api
from llmops_kit.context import bound

pytestmark = pytest.mark.unit

TENANT_OF_KEY = {"key-acme": "acme", "key-globex": "globex"}


class StandInRegistry(registry_pb2_grpc.ModelRegistryServiceServicer):
    """`production` of model `m`: a tenant's own version if it has one, else the shared one."""

    def __init__(self) -> None:
        self.production = {"": 1}
        self.calls: list[str] = []

    async def GetModelVersion(self, request: pb.GetModelVersionRequest,
                              context: grpc.aio.ServicerContext) -> pb.ModelVersion:
        key = dict(context.invocation_metadata() or ()).get("x-api-key", "")
        tenant = TENANT_OF_KEY[str(key)]
        self.calls.append(tenant)
        version = self.production.get(tenant, self.production[""])
        return pb.ModelVersion(name=request.name, version=version, format="gguf",
                               artifact_uri=f"file:///m/{version}")


class CapturingBus:
    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def subscribe_batch(self, event_type: Any, group: str, handler: Any, **_: Any) -> None:
        self.handlers[event_type.topic] = handler


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandInRegistry, RegistryClient]]:
    server = grpc.aio.server()
    registry = StandInRegistry()
    registry_pb2_grpc.add_ModelRegistryServiceServicer_to_server(registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = RegistryClient(f"127.0.0.1:{port}", 5.0, "m", ttl_seconds=300)
    try:
        yield registry, client
    finally:
        await client.close()
        await server.stop(0)


async def serving(client: RegistryClient, tenant: str) -> int:
    with bound(tenant, None, f"key-{tenant}"):
        return (await client.resolve("production")).version


def alias_changed(name: str, tenant: str) -> SimpleNamespace:
    event = pb.ModelAliasChanged(name=name, change=pb.AliasChange(alias="production",
                                                                  tenant_id=tenant))
    return SimpleNamespace(items=[SimpleNamespace(event=event)])


async def test_a_tenant_alias_move_changes_only_that_tenants_model(stand_in) -> None:
    registry, client = stand_in
    bus = CapturingBus()
    event_api.register(bus, event_api.AliasHandlers(client), "inference-test")  # type: ignore[arg-type]
    on_alias_changed = bus.handlers["llmops.registry.alias-changed.v1"]
    assert (await serving(client, "acme"), await serving(client, "globex")) == (1, 1)
    assert registry.calls == ["acme", "globex"]  # one resolution per tenant, then cached

    registry.production["acme"] = 2  # acme's maintainer moved acme's own `production`
    assert await serving(client, "acme") == 1  # cached until the event arrives
    await on_alias_changed(alias_changed("m", "acme"))
    assert (await serving(client, "acme"), await serving(client, "globex")) == (2, 1)
    assert registry.calls == ["acme", "globex", "acme"]  # globex's entry was kept

    await on_alias_changed(alias_changed("other-model", ""))  # another model: nothing to drop
    registry.production[""] = 3  # the admin moved the shared alias
    await on_alias_changed(alias_changed("m", ""))
    assert (await serving(client, "acme"), await serving(client, "globex")) == (2, 3)
    assert registry.calls == ["acme", "globex", "acme", "acme", "globex"]
