"""Fakes for the safety service's unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmops_safety.domain.engine import SafetyEngine


class FakeToxicity:
    """Scores a segment 0.99 if it contains one of `toxic_words`, else 0.01; records calls.

    "female" is an identity *mention* (as in Detoxify's unbiased model): reported, never toxic.
    """

    name = "fake"
    detail = "fake model"

    def __init__(self, toxic_words: Sequence[str] = ("badword",)) -> None:
        self.toxic_words = tuple(toxic_words)
        self.calls: list[list[str]] = []

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        self.calls.append(list(texts))
        return [{"toxicity": 0.99 if any(w in t.lower() for w in self.toxic_words) else 0.01,
                 "female": 0.7} for t in texts]


@dataclass
class FakeBus:
    """Publishes into a list; `fail` raises, `hang` never returns (a broker that is down)."""

    published: list[tuple[Any, Any, bytes]] = field(default_factory=list)
    fail: bool = False
    hang: bool = False

    async def publish(self, event_type: Any, event: Any, key: bytes) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail:
            raise ConnectionError("kafka is down")
        self.published.append((event_type, event, key))


@pytest.fixture
def toxicity() -> FakeToxicity:
    return FakeToxicity()


@pytest.fixture
def engine(toxicity: FakeToxicity) -> SafetyEngine:
    return SafetyEngine(toxicity)
