"""Checking a token stream before it reaches the client: segments, and a held-back tail.

The output check runs per segment (a sentence, or `segment_chars` of text) so the first words
show before the whole answer exists. A cut can fall inside PII ("4111 1111" | "1111 1111", an
IBAN's groups, a phone number, an e-mail), and each half alone is not PII. So the last
`holdback_chars` of every checked text are not released yet: they are checked again together
with the next segment, and the released part never ends inside a finding. Any PII no longer
than the window is therefore seen whole by at least one check before any of it is shown.
"""

from __future__ import annotations

import re

from llmops_inference.domain.model import SafetyResult, Verdict
from llmops_inference.ports import Guard

_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f\n]\s")
_LAST_SPACE = re.compile(r"\s(?=\S*$)")


class Segmenter:
    """Cuts a token stream into sentence-sized segments for the output safety check.

    A segment ends after sentence punctuation followed by whitespace, or at the last space once
    `max_chars` accumulate. PII can still straddle such a cut (cards and IBANs have spaces):
    OutputWindow holds back the tail of each segment for that.
    """

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.buffer = ""

    def feed(self, piece: str) -> list[str]:
        self.buffer += piece
        out: list[str] = []
        while True:
            m = _SENTENCE_END.search(self.buffer)
            if m is not None:
                cut = m.end()
            elif len(self.buffer) >= self.max_chars and " " in self.buffer[1:]:
                cut = self.buffer.rindex(" ") + 1
            else:
                return out
            out.append(self.buffer[:cut])
            self.buffer = self.buffer[cut:]

    def flush(self) -> list[str]:
        rest, self.buffer = self.buffer, ""
        return [rest] if rest else []


class OutputWindow:
    """Output checks over segments with a held-back tail (see the module docstring).

    Long e-mails and keys have no spaces: the release point also moves back to the last
    whitespace before the window, so a token is never split between released and held text.
    """

    def __init__(self, guard: Guard, holdback_chars: int) -> None:
        self.guard = guard
        self.holdback = holdback_chars
        self.held = ""

    async def push(self, segment: str, final: bool = False) -> tuple[str, Verdict]:
        """Checks the held tail plus `segment`; returns the text now safe to show (redacted)
        and the check's verdict. `final` releases everything (the stream has ended)."""
        text = self.held + segment
        if not text:
            return "", Verdict.ALLOW
        result = await self.guard.check(text, "output")
        if result.verdict is Verdict.BLOCK:
            self.held = ""
            return "", Verdict.BLOCK
        if final:
            cut = len(text)
        elif result.verdict is Verdict.REDACT and not result.replacements:
            cut = 0  # a guard that does not say where it redacted: hold until the end
        else:
            cut = self._cut(text, result.replacements)
        self.held = text[cut:]
        return self._redacted_prefix(text, cut, result), result.verdict

    def _cut(self, text: str, replacements: tuple[tuple[int, int, str], ...]) -> int:
        cut = len(text) - self.holdback
        if cut <= 0:
            return 0
        space = _LAST_SPACE.search(text, 0, cut)
        if space is not None:
            cut = space.end()
        # Never inside something the check redacted: it is released whole, or held whole.
        for start, end, _ in sorted(replacements, reverse=True):
            if start < cut < end:
                cut = start
        return cut

    @staticmethod
    def _redacted_prefix(text: str, cut: int, result: SafetyResult) -> str:
        if cut == 0 or result.verdict is Verdict.ALLOW:
            return text[:cut]
        if cut == len(text):
            return result.redacted_text
        out: list[str] = []
        pos = 0
        for start, end, label in sorted(r for r in result.replacements if r[1] <= cut):
            out.append(text[pos:start])
            out.append(label)
            pos = end
        out.append(text[pos:cut])
        return "".join(out)
