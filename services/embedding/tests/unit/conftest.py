"""Fakes for the embedding service's unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from llmops_kit.kafka import Batch, Received


class FakeEmbedder:
    """Deterministic 3-d vectors; records every call so tests can count model calls."""

    model_name = "fake-model"
    dimensions = 3
    max_seq_length = 128
    backend = "fake"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str], *, normalize: bool = True) -> list[list[float]]:
        self.calls.append(list(texts))
        return [[float(len(t)), 1.0, 0.0 if normalize else 9.0] for t in texts]


@dataclass
class FakeBus:
    published: list[tuple[Any, bytes, Any]] = field(default_factory=list)
    dead: list[tuple[Any, str]] = field(default_factory=list)

    async def publish_many(self, event_type: Any, events: Sequence[tuple[bytes, Any]]) -> None:
        self.published.extend((event_type, k, e) for k, e in events)

    async def dead_letter(self, record: Any, error: Any, group: str) -> None:
        self.dead.append((record, error.reason))


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def batch_of(bus: FakeBus) -> Any:
    def make(events: Sequence[Any]) -> Batch[Any]:
        items = [
            Received(e, SimpleNamespace(topic="t", partition=0, offset=i, key=None, value=b"",
                                        headers=()))
            for i, e in enumerate(events)
        ]
        return Batch(items, bus, "test-group")  # type: ignore[arg-type]

    return make
