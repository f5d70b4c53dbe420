"""What a dead letter looks like: the record's key, a bounded value and PII-free headers.

Pure functions (no I/O), so the EventBus and the tests build the same record. Copied headers and
the error text go through llmops_pii before they leave the service, and every header value is
length-bounded: a dead-letter topic is read by operators, often kept longer than the source
topic, and must not become a second copy of the tenants' personal data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord

from llmops_kit.errors import PoisonMessage
from llmops_pii import redact_pii

HEADER_DLQ_REASON = "x-dlq-reason"
HEADER_DLQ_ERROR = "x-dlq-error"
HEADER_DLQ_TOPIC = "x-dlq-original-topic"
HEADER_DLQ_PARTITION = "x-dlq-original-partition"
HEADER_DLQ_OFFSET = "x-dlq-original-offset"
HEADER_DLQ_GROUP = "x-dlq-consumer-group"
HEADER_DLQ_SIZE = "x-dlq-original-size"
HEADER_DLQ_SHA256 = "x-dlq-original-sha256"
HEADER_DLQ_TRUNCATED = "x-dlq-payload-truncated"

# Stable reasons the kit itself gives (services add their own, e.g. EMPTY_CHUNKS).
RECORD_TOO_LARGE = "RECORD_TOO_LARGE"
HANDLER_FAILED = "HANDLER_FAILED"

MAX_ERROR_CHARS = 1000
MAX_HEADER_CHARS = 256
MAX_COPIED_HEADERS = 32
MAX_HEADER_NAME_CHARS = 64
# Redaction is linear but not free: text past this is dropped before it is scanned.
_SCAN_CHARS = 16 * 1024


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: dict[str, str]


def clean(text: str, limit: int) -> str:
    """PII redacted first (so a cut cannot split a finding into an undetected half), then cut."""
    redacted = redact_pii(text[:_SCAN_CHARS]).text
    return redacted if len(redacted) <= limit else redacted[: limit - 1] + "…"


def record_size(record: ConsumerRecord[Any, Any]) -> int:
    """Key + value + header bytes of a consumed record (what max_record_bytes bounds)."""
    size = max(record.serialized_key_size, 0) + max(record.serialized_value_size, 0)
    for key, value in record.headers or ():
        size += len(key) + len(value or b"")
    return size


def too_large(record: ConsumerRecord[Any, Any], max_record_bytes: int) -> PoisonMessage | None:
    size = record_size(record)
    if size <= max_record_bytes:
        return None
    return PoisonMessage(RECORD_TOO_LARGE,
                         f"record is {size} bytes, the limit is {max_record_bytes} bytes")


def _copied(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in record.headers or ():
        if len(out) >= MAX_COPIED_HEADERS:
            break
        name = str(key)
        # The kit's own x-dlq-* are set below; a name that is long or holds PII is dropped.
        if (name.startswith("x-dlq-") or len(name) > MAX_HEADER_NAME_CHARS
                or redact_pii(name).findings):
            continue
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        out[name] = clean(text, MAX_HEADER_CHARS)
    return out


def build(
    record: ConsumerRecord[Any, Any], error: PoisonMessage, group: str, payload_bytes: int,
    *, bounded: bool = False,
) -> DeadLetter:
    """The dead letter of `record`. `bounded` (or a RECORD_TOO_LARGE error) keeps only the
    first `payload_bytes` of the value and says how large it was and its sha256."""
    value: bytes = record.value or b""
    headers = _copied(record)
    headers.update({
        HEADER_DLQ_REASON: error.reason,
        HEADER_DLQ_ERROR: clean(error.message, MAX_ERROR_CHARS),
        HEADER_DLQ_TOPIC: record.topic,
        HEADER_DLQ_PARTITION: str(record.partition),
        HEADER_DLQ_OFFSET: str(record.offset),
        HEADER_DLQ_GROUP: group,
    })
    key: bytes | None = record.key
    if bounded or error.reason == RECORD_TOO_LARGE:
        headers[HEADER_DLQ_SIZE] = str(record_size(record))
        headers[HEADER_DLQ_SHA256] = hashlib.sha256(value).hexdigest()
        headers[HEADER_DLQ_TRUNCATED] = "true" if len(value) > payload_bytes else "false"
        value = value[:payload_bytes]
        if key is not None and len(key) > payload_bytes:
            key = key[:payload_bytes]
    return DeadLetter(key, value, headers)
