"""Text windows for the learned injection detector: sentences grouped up to a size.

A 1 KB message with one injected sentence averages out in a single sentence embedding, so
the detector scores windows of whole sentences and keeps the highest. Spans index the
original text, so a window that scores high becomes a finding over exactly that text.
"""

from __future__ import annotations

import re

# Sentence ends (also full-width and CJK ones), or line breaks.
_SENTENCE = re.compile(r"[^.!?\u3002\uff01\uff1f\n]*(?:[.!?\u3002\uff01\uff1f]+|\n+|$)")
MAX_WINDOW_CHARS = 120


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-blank sentence, whitespace trimmed."""
    out = []
    for m in _SENTENCE.finditer(text):
        start, end = m.start(), m.end()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append((start, end))
    return out


def _split_long(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """A sentence over `limit` characters, cut at the last space before each limit."""
    out = []
    while end - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        cut = cut if cut > start else start + limit
        out.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        out.append((start, end))
    return out


def windows(text: str, limit: int = MAX_WINDOW_CHARS) -> list[tuple[int, int]]:
    """Consecutive sentences grouped greedily into windows of at most `limit` characters."""
    pieces: list[tuple[int, int]] = []
    for s, e in sentences(text):
        pieces.extend(_split_long(text, s, e, limit))
    out: list[tuple[int, int]] = []
    for s, e in pieces:
        if out and e - out[-1][0] <= limit:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out
