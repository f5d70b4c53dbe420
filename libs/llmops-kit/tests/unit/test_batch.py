from __future__ import annotations

from typing import Any

import pytest
from aiokafka import ConsumerRecord

from llmops.ingestion.v1 import events_pb2
from llmops_kit import events
from llmops_kit.errors import PoisonMessage
from llmops_kit.kafka import Batch, Received

pytestmark = pytest.mark.unit


class RecordingBus:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    async def dead_letter(self, record: Any, error: PoisonMessage, group: str) -> None:
        self.sent.append((record.offset, error.reason))


def _item(offset: int) -> Received[events_pb2.DocumentDeleted]:
    ev = events_pb2.DocumentDeleted(envelope=events.make_envelope("t", tenant="acme"))
    record = ConsumerRecord("topic", 0, offset, 0, 0, b"k", ev.SerializeToString(), None, 1, 1, [])
    return Received(ev, record)


async def test_a_retried_batch_dead_letters_each_record_once() -> None:
    bus = RecordingBus()
    items = [_item(7), _item(8)]
    batch: Batch[events_pb2.DocumentDeleted] = Batch(items, bus, "g")  # type: ignore[arg-type]
    for _attempt in range(3):  # the handler runs again after a transient failure
        batch.rejected.clear()
        await batch.dead_letter(items[1], PoisonMessage("BAD", "no"))
    assert bus.sent == [(8, "BAD")]
    assert [(i.record.offset, e.reason) for i, e in batch.rejected] == [(8, "BAD")]
