"""Turning token ids back into text as they arrive, and finding stop sequences in it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[Sequence[int]], str]

# Context tokens from the prompt: tokenizers that drop a word's leading space when it is
# decoded alone (SentencePiece) need the previous token to get the space right.
_CONTEXT_TOKENS = 5


class IncrementalDetokenizer:
    """TGI's prefix/read-offset scheme: each pushed token yields the text it completes.

    A token that ends inside a multi-byte character yields "" and its bytes come out with the
    next token, so the yielded pieces always concatenate to valid text.
    """

    def __init__(self, decode: Decode, prompt_ids: Sequence[int]) -> None:
        self._decode = decode
        self._ids: list[int] = list(prompt_ids[-_CONTEXT_TOKENS:])
        self._prefix = 0
        self._read = len(self._ids)

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return new_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end)."""
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return new_text[len(prefix_text) :] if len(new_text) > len(prefix_text) else ""


class StopSequences:
    """Finds the earliest stop sequence in a growing text without rescanning all of it."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._longest = max((len(s) for s in self.stops), default=0)

    def __bool__(self) -> bool:
        return bool(self.stops)

    def find(self, text: str, added: int) -> int | None:
        """Start of the first stop sequence that ends within the last `added` characters."""
        if not self.stops or added <= 0:
            return None
        start = max(0, len(text) - added - self._longest + 1)
        hits = [i for s in self.stops if (i := text.find(s, start)) >= 0]
        return min(hits) if hits else None

    def safe_length(self, text: str) -> int:
        """How much of `text` can be shown now: the rest might be the start of a stop sequence.

        Streaming APIs that cut the stop sequence out (OpenAI's) hold that tail back until
        the next token settles it.
        """
        for i in range(max(0, len(text) - self._longest + 1), len(text)):
            tail = text[i:]
            if any(s.startswith(tail) for s in self.stops):
                return i
        return len(text)
