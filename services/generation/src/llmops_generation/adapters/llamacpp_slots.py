"""The llama.cpp context's slots (sequence ids) and the prompt prefix each free one still holds.

With prefix reuse on, a slot whose sequence ended keeps its KV cells, and the pool remembers
the tokens in them (as llama.cpp's own server does with `cache_prompt`). A joining prompt
gets the free slot whose remembered tokens share the longest prefix with it; the decoder
removes that slot's cells from the common length on and feeds only the rest of the prompt.
Every RAG prompt starts with the same ~130-token chat header, instructions and example, so
most joins skip at least that much prefill.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

# Prompt tokens always computed, however much of the prompt a slot holds (see acquire).
MIN_FED = 2


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def runs(slots: set[int]) -> int:
    """How many runs of consecutive ids `slots` makes ({0, 1, 3} -> 2)."""
    return sum(1 for s in slots if s - 1 not in slots)


@dataclass(frozen=True)
class Claim:
    """A slot handed to a joining sequence.

    `held`: tokens its KV cells still hold; `keep`: how many of them (a prefix of the prompt)
    the sequence reuses. Cells from `keep` on must be removed before the rest is fed.
    """

    slot: int
    held: int
    keep: int


class SlotPool:
    """Not thread-safe: the decoder's one worker thread owns it."""

    def __init__(self, slots: int, *, reuse: bool) -> None:
        self.slots = slots
        self.reuse = reuse
        self._free: dict[int, tuple[int, ...]] = {}
        self._freed_at: dict[int, int] = {}
        self._clock = itertools.count()
        self.clear()

    def __len__(self) -> int:
        """Free slots."""
        return len(self._free)

    def held(self, slot: int) -> tuple[int, ...]:
        """The tokens a free slot's KV cells hold (empty when it holds none)."""
        return self._free.get(slot, ())

    def acquire(self, prompt: Sequence[int], *, reuse: bool = True) -> Claim:
        """The free slot for `prompt`: the longest shared prefix, else an empty slot, else the LRU.

        At least the prompt's last two tokens are always fed: the last one's logits choose the
        first new token, and llama.cpp computes a one-token batch through another kernel than
        a longer one, with logits that differ slightly from a cold prefill's. With two, the
        first token is bit for bit what the uncached prompt gives. With `reuse` false (the
        request wants every prompt token's logits) nothing is kept.
        """
        if not self._free:
            raise RuntimeError("no free slot")
        reuse = reuse and self.reuse
        limit = len(prompt) - MIN_FED
        busy = set(range(self.slots)) - self._free.keys()

        def rank(slot: int) -> tuple[int, int, bool, int]:
            held = self._free[slot]
            shared = min(common_prefix(held, prompt), limit) if reuse and held else 0
            # Longest reuse first; then a slot that keeps the running slots in as few runs of
            # consecutive ids as possible (llama.cpp splits a step wherever the ids of its rows
            # stop rising by one, see LlamaCppModel.decode); then a slot holding nothing; then
            # the one freed longest ago, so recently used prefixes stay for the next request.
            return (shared, -runs(busy | {slot}), not held, -self._freed_at[slot])

        ranks = {slot: rank(slot) for slot in self._free}
        slot = max(ranks, key=ranks.__getitem__)
        keep = max(ranks[slot][0], 0)
        held = self._free.pop(slot)
        return Claim(slot, len(held), keep)

    def release(self, slot: int, tokens: Sequence[int] = ()) -> None:
        """Frees `slot`; `tokens` are what its KV cells still hold (nothing when removed)."""
        self._free[slot] = tuple(tokens) if self.reuse else ()
        self._freed_at[slot] = next(self._clock)

    def clear(self) -> None:
        """Every slot free and empty (after the whole KV cache was cleared)."""
        self._free = {}
        self._freed_at = {}
        for slot in range(self.slots):
            self.release(slot)
