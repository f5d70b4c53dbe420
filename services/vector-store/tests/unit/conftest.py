"""Fakes of the vector-store's other collaborators (the FakeStore is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from llmops_kit.kafka import Batch, Received


class FakeEmbedder:
    def __init__(self, dims: int) -> None:
        self.dims = dims
        self.calls: list[str] = []

    async def embed_query(self, text: str) -> list[float]:
        self.calls.append(text)
        return [1.0] + [0.0] * (self.dims - 1)


@dataclass
class FakeBus:
    """Stands in for EventBus where a Batch dead-letters and a handler publishes."""

    published: list[tuple[Any, bytes, Any]] = field(default_factory=list)
    dead: list[tuple[Any, str]] = field(default_factory=list)

    async def publish_many(self, event_type: Any, events: Sequence[tuple[bytes, Any]]) -> None:
        self.published.extend((event_type, k, e) for k, e in events)

    async def dead_letter(self, record: Any, error: Any, group: str) -> None:
        self.dead.append((record, error.reason))


def make_batch(bus: FakeBus, events: Sequence[Any]) -> Batch[Any]:
    items = [
        Received(e, SimpleNamespace(topic="t", partition=0, offset=i, key=None, value=b"",
                                    headers=()))
        for i, e in enumerate(events)
    ]
    return Batch(items, bus, "test-group")  # type: ignore[arg-type]


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder(4)


@pytest.fixture
def batch_of(bus: FakeBus) -> Any:
    """batch_of([event, ...]) -> a kit Batch whose dead-letters land in the fake bus."""
    return lambda events: make_batch(bus, events)
