"""The service layer and verdict events: validation, no raw PII, Kafka outages never fail."""

from __future__ import annotations

import asyncio

import pytest

from llmops.safety.v1 import safety_pb2
from llmops_kit.context import bound
from llmops_kit.errors import InvalidArgument
from llmops_safety.api.events import BackgroundPublisher
from llmops_safety.domain.engine import SafetyEngine
from llmops_safety.domain.model import Direction, Verdict
from llmops_safety.domain.policy import PolicyBook
from llmops_safety.domain.service import SafetyService
from llmops_safety.settings import PoliciesSettings

from .conftest import FakeBus

pytestmark = pytest.mark.unit

PII_TEXT = "Call me at 010-1234-5678 or mail kim@example.com, card 4111 1111 1111 1111."


def service(engine: SafetyEngine, bus: FakeBus, **kw) -> tuple[SafetyService, BackgroundPublisher]:
    publisher = BackgroundPublisher(bus, timeout=kw.pop("timeout", 1.0),
                                    max_in_flight=kw.pop("max_in_flight", 100))
    book = kw.pop("book", PolicyBook())
    return SafetyService(engine, book, publisher, **kw), publisher


async def test_event_carries_findings_but_no_raw_pii(engine: SafetyEngine) -> None:
    bus = FakeBus()
    svc, publisher = service(engine, bus)
    with bound("acme", "trace-1"):
        result = await svc.check_text("acme", PII_TEXT, Direction.INPUT)
    await publisher.drain()
    assert result.verdict is Verdict.REDACT
    ((event_type, event, key),) = bus.published
    assert event_type.topic == "llmops.safety.verdict-issued.v1" and key == b"acme"
    assert (event.envelope.tenant_id, event.envelope.trace_id) == ("acme", "trace-1")
    assert event.envelope.producer == "safety" and event.envelope.schema_version == 1
    assert event.verdict == safety_pb2.VERDICT_REDACT
    assert event.direction == safety_pb2.DIRECTION_INPUT
    assert [(f.category, f.start, f.end) for f in event.findings] == [
        ("pii.phone", 11, 24), ("pii.email", 33, 48), ("pii.credit_card", 55, 74)]
    assert event.text_chars == len(PII_TEXT)
    assert event.redacted_excerpt == "Call me at [PHONE] or mail [EMAIL], card [CREDIT_CARD]."
    payload = event.SerializeToString()
    for raw in (b"010-1234-5678", b"kim@example.com", b"4111"):
        assert raw not in payload
    assert publisher.stats.published == 1


async def test_excerpt_hides_all_pii_even_when_policy_allows_it(engine: SafetyEngine) -> None:
    bus = FakeBus()
    book = PoliciesSettings.model_validate(
        {"tenants": {"acme": {"input": {"redact": []}}}}).book()
    svc, publisher = service(engine, bus, book=book)
    result = await svc.check_text("acme", PII_TEXT, Direction.INPUT)
    await publisher.drain()
    assert result.verdict is Verdict.ALLOW and result.redacted_text == PII_TEXT
    assert b"kim@example.com" not in bus.published[0][1].SerializeToString()


async def test_kafka_errors_are_counted_not_raised(engine: SafetyEngine) -> None:
    bus = FakeBus(fail=True)
    svc, publisher = service(engine, bus)
    result = await svc.check_text("acme", "hello", Direction.OUTPUT)
    await publisher.drain()
    assert result.verdict is Verdict.ALLOW
    assert (publisher.stats.published, publisher.stats.failed) == (0, 1)


async def test_a_hanging_broker_does_not_delay_the_call(engine: SafetyEngine) -> None:
    bus = FakeBus(hang=True)
    svc, publisher = service(engine, bus, timeout=0.2, max_in_flight=2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(3):
        await svc.check_text("acme", "hello", Direction.INPUT)
    assert loop.time() - start < 0.2  # none of the calls waited for the broker
    assert publisher.stats.dropped == 1  # the third found two publishes in flight
    await asyncio.sleep(0.3)
    assert publisher.stats.failed == 2 and publisher.stats.published == 0


async def test_validation_reasons(engine: SafetyEngine) -> None:
    svc, _ = service(engine, FakeBus(), max_text_chars=10)
    with pytest.raises(InvalidArgument) as info:
        await svc.check_text("acme", "x" * 11, Direction.INPUT)
    assert info.value.reason == "TEXT_TOO_LONG"
    with pytest.raises(InvalidArgument) as info:
        await svc.redact("a@b.io", ["pii.email", "pii.nope"])
    assert info.value.reason == "UNKNOWN_CATEGORY"


async def test_redact_uses_no_policy_and_publishes_nothing(engine: SafetyEngine) -> None:
    bus = FakeBus()
    svc, _ = service(engine, bus)
    result = await svc.redact("a@b.io / 10.0.0.1", [])
    assert result.text == "[EMAIL] / [IP_ADDRESS]" and bus.published == []
    assert (await svc.redact("a@b.io / 10.0.0.1", ["pii.email"])).text == "[EMAIL] / 10.0.0.1"


def test_info_reports_backend_and_tenant_policy(engine: SafetyEngine) -> None:
    book = PoliciesSettings.model_validate({"tenants": {"acme": {"input": {"toxicity_block": 0.5}}}}).book()
    svc, _ = service(engine, FakeBus(), book=book)
    info = svc.info("acme")
    assert (info.toxicity_backend, info.toxicity_backend_detail) == ("fake", "fake model")
    assert info.policy_source == "tenant" and info.policy.input.toxicity_block == 0.5
    assert svc.info("globex").policy_source == "default"
