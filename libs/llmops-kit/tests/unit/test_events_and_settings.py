from __future__ import annotations

import json
import logging

import pytest

from llmops.ingestion.v1 import events_pb2
from llmops_kit import events, topics
from llmops_kit.context import bound
from llmops_kit.errors import PoisonMessage
from llmops_kit.logging import JsonFormatter
from llmops_kit.settings import ServiceSettings, parse_api_keys

pytestmark = pytest.mark.unit


def _deleted(**env: object) -> events_pb2.DocumentDeleted:
    envelope = events.make_envelope("test", tenant="acme")
    for k, v in env.items():
        setattr(envelope, k, v)
    return events_pb2.DocumentDeleted(envelope=envelope, document_id="d1", up_to_version=2)


def test_round_trip_keeps_envelope_and_fields() -> None:
    ev = _deleted()
    back = events.decode(events.DOCUMENT_DELETED, ev.SerializeToString())
    assert back == ev
    assert back.envelope.schema_version == 1 and back.envelope.trace_id


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "EMPTY_PAYLOAD"),
        (b"\xff\xff\xff\xff", "MALFORMED_PROTOBUF"),
        (events_pb2.DocumentDeleted(document_id="x").SerializeToString(), "MISSING_ENVELOPE"),
        (_deleted(schema_version=9).SerializeToString(), "UNSUPPORTED_SCHEMA_VERSION"),
        (_deleted(tenant_id="").SerializeToString(), "MISSING_TENANT"),
        (_deleted(event_id="").SerializeToString(), "MISSING_EVENT_ID"),
    ],
)
def test_poison_messages_get_a_specific_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(PoisonMessage) as err:
        events.decode(events.DOCUMENT_DELETED, payload)
    assert err.value.reason == reason


def test_headers_mirror_the_envelope() -> None:
    ev = _deleted()
    h = events.headers_for(ev, events.DOCUMENT_DELETED)
    assert h[events.HEADER_EVENT_TYPE] == "llmops.ingestion.v1.DocumentDeleted"
    assert h[events.HEADER_TENANT] == "acme"
    assert h[events.HEADER_EVENT_ID] == ev.envelope.event_id


def test_every_topic_is_versioned_and_registered() -> None:
    for name in topics.ALL:
        assert name.startswith("llmops.") and name.rsplit(".", 1)[1] == "v1"
        assert name in events.REGISTRY
    assert topics.dead_letter(topics.CHUNKS_CREATED).endswith(".v1.dlq")


def test_envelope_takes_tenant_and_trace_from_context() -> None:
    with bound("globex", "trace-123"):
        env = events.make_envelope("svc")
    assert (env.tenant_id, env.trace_id, env.producer) == ("globex", "trace-123", "svc")


def test_api_keys_parse_and_bad_entries_fail_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_api_keys("k1=a, k2=b") == {"k1": "a", "k2": "b"}
    monkeypatch.setenv("LLMOPS_API_KEYS", "novalue")
    with pytest.raises(ValueError, match="api_keys"):
        ServiceSettings()


def test_json_logs_carry_trace_and_tenant() -> None:
    fmt = JsonFormatter("ingestion")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.document_id = "d1"
    with bound("acme", "t-1"):
        line = json.loads(fmt.format(record))
    assert line["msg"] == "hello world" and line["service"] == "ingestion"
    assert (line["tenant"], line["trace_id"], line["document_id"]) == ("acme", "t-1", "d1")
