"""Property tests of every ModelRegistryService RPC's request converter, on the real SQLite store:
arbitrary requests give a response or a DomainError with a reason (INVALID_ARGUMENT or
NOT_FOUND), never another exception."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.registry.v1 import registry_pb2 as pb
from llmops_kit.errors import DomainError
from llmops_kit.proto_strategies import assert_client_error, messages, request_types, rpc_outcome
from llmops_registry.adapters.memory_audit import MemoryAuditLog
from llmops_registry.adapters.sql_schema import create_schema, make_engine
from llmops_registry.adapters.sql_store import SqlRegistryStore
from llmops_registry.api.grpc import RegistryServicer
from llmops_registry.domain.audit import Auditor
from llmops_registry.domain.model import Actor, OutboxEntry
from llmops_registry.domain.models import ModelRegistry, Policy
from llmops_registry.domain.outbox import OutboxRelay
from llmops_registry.domain.prompts import PromptRegistry
from llmops_registry.domain.seed import RAG_PROMPT_NAME, seed

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=2000,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
RPCS = request_types(pb.DESCRIPTOR.services_by_name["ModelRegistryService"])
CLIENT_ERRORS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


class NullPublisher:
    async def publish(self, entry: OutboxEntry) -> None:
        return None


class Running:
    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = make_engine(f"sqlite:///{tmp}/registry.db")
        create_schema(self.engine)
        store = SqlRegistryStore(self.engine)
        self.relay = OutboxRelay(store, NullPublisher(), flush_timeout=0.5, interval=60)
        models = ModelRegistry(store, self.relay, Policy(), Auditor(MemoryAuditLog()))
        prompts = PromptRegistry(store, self.relay, Policy(), Auditor(MemoryAuditLog()))
        self.loop.run_until_complete(seed(models, prompts, Actor("system"), None, True))
        self.servicer = RegistryServicer(models, prompts)

    def call(self, method: str, request: Any) -> Any:
        return rpc_outcome(getattr(self.servicer, method)(request, None), loop=self.loop)

    def close(self) -> None:
        self.loop.run_until_complete(self.relay.stop())
        self.loop.close()
        self.engine.dispose()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    reg = Running(tmp_path)
    yield reg
    reg.close()


def test_every_rpc_is_covered() -> None:
    assert {name for name, _ in RPCS} >= {"RegisterModelVersion", "SetAlias",
                                          "CreatePromptVersion", "RenderPrompt"}


@pytest.mark.parametrize(("method", "request_type"), RPCS, ids=[name for name, _ in RPCS])
@PROPERTY
@given(data=st.data())
def test_arbitrary_requests(running: Running, method: str, request_type: type,
                            data: st.DataObject) -> None:
    result = running.call(method, data.draw(messages(request_type)))
    assert_client_error(result, *CLIENT_ERRORS)


@PROPERTY
@given(request=messages(pb.RenderPromptRequest))
def test_render_the_shipped_prompt_with_arbitrary_variables_and_documents(
        running: Running, request: pb.RenderPromptRequest) -> None:
    request.name = RAG_PROMPT_NAME
    request.ClearField("selector")
    result = running.call("RenderPrompt", request)
    assert_client_error(result, *CLIENT_ERRORS)
    if not isinstance(result, DomainError):
        assert result.name == RAG_PROMPT_NAME and result.text.endswith("Answer:")
