"""Dead-letter records: PII-free bounded headers, bounded payloads, the bus's fallbacks."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from llmops_kit import dead_letters as dl
from llmops_kit.delivery import DeadLetterFailed
from llmops_kit.errors import PoisonMessage
from llmops_kit.kafka import EventBus
from llmops_kit.settings import KafkaSettings

pytestmark = pytest.mark.unit


def _record(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord[Any, Any]:
    headers = headers or []
    return ConsumerRecord("orders", 3, 42, 0, 0, b"key", value, None, 3, len(value), headers)


def test_copied_headers_and_the_error_are_pii_redacted_and_bounded() -> None:
    record = _record(b"payload", [
        ("x-tenant", b"acme"),
        ("x-customer", b"mail kim@example.com or call +1 415 555 0132"),
        ("x-note", b"a" * 5000),
        ("kim@example.com", b"a header named after a person"),
        ("x-dlq-reason", b"SPOOFED"),
    ])
    error = PoisonMessage("BAD_DOCUMENT", "document of kim@example.com, card 4111 1111 1111 1111")
    letter = dl.build(record, error, "g1", payload_bytes=100)
    h = letter.headers
    assert h["x-tenant"] == "acme"
    assert h["x-customer"] == "mail [EMAIL] or call [PHONE]"
    assert len(h["x-note"]) == dl.MAX_HEADER_CHARS and h["x-note"].endswith("…")
    assert "kim@example.com" not in h  # a header name with PII is dropped
    assert h[dl.HEADER_DLQ_REASON] == "BAD_DOCUMENT"
    assert h[dl.HEADER_DLQ_ERROR] == "document of [EMAIL], card [CREDIT_CARD]"
    assert (h[dl.HEADER_DLQ_TOPIC], h[dl.HEADER_DLQ_PARTITION], h[dl.HEADER_DLQ_OFFSET],
            h[dl.HEADER_DLQ_GROUP]) == ("orders", "3", "42", "g1")
    assert letter.value == b"payload" and letter.key == b"key"  # small: kept whole
    assert dl.HEADER_DLQ_SIZE not in h


def test_the_error_text_is_bounded() -> None:
    letter = dl.build(_record(b"v"), PoisonMessage("X", "e" * 10_000), "g", 10)
    assert len(letter.headers[dl.HEADER_DLQ_ERROR]) == dl.MAX_ERROR_CHARS


def test_a_too_large_record_keeps_a_bounded_payload_its_size_and_hash() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    record = _record(value, [("x-tenant", b"acme")])
    problem = dl.too_large(record, max_record_bytes=512 * 1024)
    assert problem is not None and problem.reason == dl.RECORD_TOO_LARGE
    letter = dl.build(record, problem, "g", payload_bytes=1000)
    assert letter.value == value[:1000]
    assert letter.headers[dl.HEADER_DLQ_SIZE] == str(len(value) + 3 + len("x-tenant") + 4)
    assert letter.headers[dl.HEADER_DLQ_SHA256] == hashlib.sha256(value).hexdigest()
    assert letter.headers[dl.HEADER_DLQ_TRUNCATED] == "true"
    assert dl.too_large(record, max_record_bytes=2 * 1024 * 1024) is None


class FakeBroker:
    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish(self, value: bytes, *, topic: str, key: bytes | None,
                      headers: dict[str, str]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((topic, value, headers))


def _bus(broker: FakeBroker) -> EventBus:
    bus = EventBus(KafkaSettings(dlq_payload_bytes=16), client_id="t")
    bus.broker = broker  # type: ignore[assignment]
    return bus


async def test_a_dead_letter_too_large_to_republish_is_sent_bounded_as_record_too_large() -> None:
    broker = FakeBroker(MessageSizeTooLargeError())
    await _bus(broker).dead_letter(_record(b"z" * 100), PoisonMessage("EMPTY_CHUNKS", "no"), "g")
    [(topic, value, headers)] = broker.sent
    assert topic == "orders.dlq" and value == b"z" * 16
    assert headers[dl.HEADER_DLQ_REASON] == dl.RECORD_TOO_LARGE
    assert headers[dl.HEADER_DLQ_ERROR].startswith("EMPTY_CHUNKS, and too large to republish")
    assert headers[dl.HEADER_DLQ_SIZE] == str(100 + 3)


@pytest.mark.parametrize("failures", [
    (KafkaTimeoutError(),),
    (MessageSizeTooLargeError(), MessageSizeTooLargeError()),
])
async def test_a_dead_letter_that_cannot_be_written_raises_dead_letter_failed(
    failures: tuple[BaseException, ...]
) -> None:
    broker = FakeBroker(*failures)
    with pytest.raises(DeadLetterFailed) as info:
        await _bus(broker).dead_letter(_record(b"v"), PoisonMessage("X", "y"), "g")
    assert info.value.reason == "DEAD_LETTER_FAILED" and "orders[3]@42" in info.value.message
    assert broker.sent == []


def test_size_limits_derive_from_one_setting() -> None:
    s = KafkaSettings(max_record_bytes=8 * 1024 * 1024)
    assert s.producer_max_request_size > s.max_record_bytes
    assert s.broker_max_message_bytes >= s.producer_max_request_size
    assert s.consumer_fetch_bytes >= s.broker_max_message_bytes
    bus = EventBus(s, client_id="t")
    assert bus.broker._connection_kwargs["max_request_size"] == s.producer_max_request_size


def test_the_faststream_logger_is_a_real_logger() -> None:
    bus = EventBus(KafkaSettings(), client_id="t")
    logger = bus.broker.config.logger.params_storage.get_logger(context=None)  # type: ignore[arg-type]
    assert logger.name == "llmops_kit.faststream"  # type: ignore[attr-defined]
