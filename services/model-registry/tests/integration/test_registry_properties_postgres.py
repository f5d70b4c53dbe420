"""Every ModelRegistryService RPC with arbitrary requests on Postgres: a response or a
DomainError with a reason (INVALID_ARGUMENT or NOT_FOUND), never a database error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.registry.v1 import registry_pb2 as pb
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
from llmops_registry.domain.seed import seed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

PROPERTY = settings(max_examples=200, deadline=5000,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
RPCS = request_types(pb.DESCRIPTOR.services_by_name["ModelRegistryService"])


class NullPublisher:
    async def publish(self, entry: OutboxEntry) -> None:
        return None


@pytest.fixture(scope="module")
def servicer(postgres_url: str) -> Iterator[tuple[RegistryServicer, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    engine = make_engine(postgres_url)
    create_schema(engine)
    store = SqlRegistryStore(engine)
    relay = OutboxRelay(store, NullPublisher(), flush_timeout=0.5, interval=60)
    audit = Auditor(MemoryAuditLog())
    models = ModelRegistry(store, relay, Policy(), audit)
    prompts = PromptRegistry(store, relay, Policy(), audit)
    loop.run_until_complete(seed(models, prompts, Actor("system"), None, True))
    yield RegistryServicer(models, prompts), loop
    loop.run_until_complete(relay.stop())
    loop.close()
    engine.dispose()


@pytest.mark.parametrize(("method", "request_type"), RPCS, ids=[name for name, _ in RPCS])
@PROPERTY
@given(data=st.data())
def test_arbitrary_requests(servicer: tuple[RegistryServicer, Any], method: str,
                            request_type: type, data: st.DataObject) -> None:
    svc, loop = servicer
    result = rpc_outcome(getattr(svc, method)(data.draw(messages(request_type)), None), loop=loop)
    assert_client_error(result, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
