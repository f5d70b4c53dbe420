"""What bounds a request, and how long each of its stages took."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_question_chars: int = 4_000
    max_top_k: int = 20
    max_new_tokens: int = 1_024
    # A streamed segment is checked once it ends a sentence or reaches this many characters.
    segment_chars: int = 200
    # The tail of each checked text not shown until it is checked again with what follows:
    # PII up to this long (an IBAN is at most 42 with spaces) cannot slip through a cut.
    holdback_chars: int = 48


class Stopwatch:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self.start = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + (time.perf_counter() - t0) * 1000

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000
