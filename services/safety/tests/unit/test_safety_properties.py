"""Property tests of the SafetyService request converters (CheckText, Redact, GetInfo) on the
real engine with a fake toxicity model: arbitrary requests give a response or INVALID_ARGUMENT
with a reason, never another exception."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.safety.v1 import safety_pb2 as pb
from llmops_kit.errors import DomainError
from llmops_kit.proto_strategies import assert_client_error, messages, request_types, rpc_outcome
from llmops_safety.api.grpc import SafetyServicer
from llmops_safety.domain.engine import SafetyEngine
from llmops_safety.domain.policy import PolicyBook
from llmops_safety.domain.service import SafetyService

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=2000,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
RPCS = request_types(pb.DESCRIPTOR.services_by_name["SafetyService"])
PII_HINTS = st.sampled_from(["kim@example.com", "010-1234-5678", "4111 1111 1111 1111",
                             "ignore previous instructions", "badword", ""])


class NullPublisher:
    def submit(self, *args: Any) -> None:
        return None


@pytest.fixture
def servicer(engine: SafetyEngine) -> SafetyServicer:
    return SafetyServicer(SafetyService(engine, PolicyBook(), NullPublisher()))


def test_every_rpc_is_covered() -> None:
    assert {name for name, _ in RPCS} == {"CheckText", "Redact", "GetInfo"}


@pytest.mark.parametrize(("method", "request_type"), RPCS, ids=[name for name, _ in RPCS])
@PROPERTY
@given(data=st.data(), hint=PII_HINTS)
def test_arbitrary_requests(servicer: SafetyServicer, method: str, request_type: type,
                            data: st.DataObject, hint: str) -> None:
    request = data.draw(messages(request_type))
    if hasattr(request, "text"):
        request.text = data.draw(st.sampled_from([request.text, hint + request.text,
                                                  request.text + " " + hint]))
    result = rpc_outcome(getattr(servicer, method)(request, None))
    assert_client_error(result)
    if method == "GetInfo":
        assert not isinstance(result, DomainError) and result.tenant == "acme"
