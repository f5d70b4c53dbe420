"""Property tests of llmops_kit.events.decode over every registered event type: whatever the
bytes, the result is the event or a PoisonMessage with a known reason, and quickly."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops_kit import events
from llmops_kit.errors import PoisonMessage
from llmops_kit.proto_strategies import messages

pytestmark = pytest.mark.unit

KNOWN_REASONS = {"EMPTY_PAYLOAD", "MALFORMED_PROTOBUF", "MISSING_ENVELOPE",
                 "UNSUPPORTED_SCHEMA_VERSION", "MISSING_EVENT_ID", "MISSING_TENANT",
                 "BAD_TENANT"}
EVENT_TYPES = sorted(events.REGISTRY.values(), key=lambda et: et.topic)
PROPERTY = settings(max_examples=200, deadline=500,
                    suppress_health_check=[HealthCheck.too_slow])
TIME_BOUND = 0.25


def decoded_or_reason(event_type: events.EventType, payload: bytes) -> object:
    start = time.monotonic()
    try:
        result: object = events.decode(event_type, payload)
    except PoisonMessage as exc:
        assert exc.reason in KNOWN_REASONS, exc.reason
        result = exc.reason
    assert time.monotonic() - start < TIME_BOUND
    return result


def test_every_event_type_is_covered() -> None:
    assert len(EVENT_TYPES) >= 15
    assert events.TENANT_DELETED in EVENT_TYPES


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda et: et.topic)
@PROPERTY
@given(payload=st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_dead_letter(event_type: events.EventType,
                                               payload: bytes) -> None:
    result = decoded_or_reason(event_type, payload)
    if not isinstance(result, str):
        assert isinstance(result, event_type.message)


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda et: et.topic)
@PROPERTY
@given(data=st.data())
def test_messages_with_arbitrary_fields_round_trip_or_dead_letter(
        event_type: events.EventType, data: st.DataObject) -> None:
    msg = data.draw(messages(event_type.message))
    result = decoded_or_reason(event_type, msg.SerializeToString())
    if isinstance(result, str):
        env = msg.envelope
        expected = ("EMPTY_PAYLOAD" if not msg.ByteSize() else
                    "MISSING_ENVELOPE" if not msg.HasField("envelope") else
                    "UNSUPPORTED_SCHEMA_VERSION"
                    if env.schema_version not in event_type.schema_versions else
                    "MISSING_EVENT_ID" if not env.event_id else
                    "MISSING_TENANT" if not env.tenant_id else "BAD_TENANT")
        assert result == expected
    else:  # bytes, not ==: a NaN field is never equal to itself
        assert isinstance(result, event_type.message)
        assert result.SerializeToString(deterministic=True) == \
            msg.SerializeToString(deterministic=True)


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda et: et.topic)
@settings(PROPERTY, max_examples=100)
@given(data=st.data(), cut=st.integers(0, 64), junk=st.binary(max_size=16))
def test_truncated_or_padded_valid_events_decode_or_dead_letter(
        event_type: events.EventType, data: st.DataObject, cut: int, junk: bytes) -> None:
    msg = data.draw(messages(event_type.message, depth=2))
    payload = msg.SerializeToString()
    decoded_or_reason(event_type, payload[:max(0, len(payload) - cut)] + junk)


@pytest.mark.parametrize("tenant", ["ac\x00me", "x" * 129, "tab\there"])
def test_tenants_no_store_can_key_are_dead_lettered(tenant: str) -> None:
    event = events.TENANT_DELETED.message(
        envelope=events.make_envelope("test", tenant=tenant), tenant_id="t")
    with pytest.raises(PoisonMessage) as info:
        events.decode(events.TENANT_DELETED, event.SerializeToString())
    assert info.value.reason == "BAD_TENANT"
