"""Interfaces the safety domain needs; adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from llmops_safety.domain.model import CheckResult, Direction


class ToxicityModel(Protocol):
    """A toxicity classifier. Synchronous and CPU-bound: callers run it off the event loop."""

    # "detoxify" or "alt-profanity-check": reported to callers.
    name: str
    # The specifics (checkpoint file, package version), for GetInfo and the start-up log.
    detail: str

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Per text, class -> probability; every dict has at least "toxicity"."""
        ...


class InjectionClassifier(Protocol):
    """A learned prompt-injection classifier. Synchronous and CPU-bound, like ToxicityModel."""

    # e.g. "use-lr": the finding detail is "model.<name>".
    name: str
    # The specifics (encoder and head versions, training data), for the start-up log.
    detail: str
    # The probability at which a window counts as an injection (fitted with the weights).
    threshold: float

    def score(self, texts: Sequence[str]) -> list[float]:
        """Per text, the probability that it is a prompt injection or jailbreak."""
        ...


class VerdictPublisher(Protocol):
    """Announces a verdict. Must never raise or block the caller on a broker outage."""

    def submit(self, result: CheckResult, direction: Direction, text_chars: int,
               excerpt: str) -> None: ...
