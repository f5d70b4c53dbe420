"""Groundedness: the share of an answer's sentences that a passage it rests on supports.

An answer is split into sentences (English and Korean punctuation, line breaks; citation
markers such as [1] removed), the sentences and the passages are embedded together, and a
sentence counts as supported when its best cosine similarity to any passage reaches the
threshold. Pure functions: the embedding call is the caller's (quality.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# [1], [1, 2], [1-3], [12]: the prompt's source markers; they carry no meaning of their own.
_MARKERS = re.compile(r"\s*\[\d{1,3}(?:\s*[,\-\u2013]\s*\d{1,3})*\]")
# Sentence ends: . ! ? … followed by closing quotes/brackets and a space (or the end), so
# "2.08 days" and "v2.0" stay whole; CJK full stops end a sentence without a space.
# (\u2026 ellipsis; \u201d \u2019 closing quotes; \u3002 \uff01 \uff1f CJK full stop, !, ?)
_CLOSE = r"[\"'\u201d\u2019)\]]*"
_END = re.compile(rf"[.!?\u2026]+{_CLOSE}(?=\s|$)|[\u3002\uff01\uff1f]+{_CLOSE}")
_BULLET = re.compile(r"^(?:[-*•·]|\d{1,2}[.)])\s+")
# The word right before a full stop, to tell "e.g." or "Dr." from the end of a sentence.
_LAST_WORD = re.compile(r"(?:^|[\s(])([A-Za-z](?:\.[A-Za-z])+|[A-Za-z]+)$")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "mr", "mrs", "ms", "dr", "vs", "approx", "incl",
                            "cf", "st", "jr", "sr", "prof"})
# A sentence must hold at least one letter (any script): "1." or "—" alone is not one.
_LETTER = re.compile(r"[^\W\d_]")


def strip_markers(text: str) -> str:
    return _MARKERS.sub("", text)


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, citation markers removed, in order."""
    out: list[str] = []
    for raw in strip_markers(text).splitlines():
        line = _BULLET.sub("", raw.strip())
        start = 0
        for m in _END.finditer(line):
            if m.group().startswith(".") and len(m.group()) == 1:
                word = _LAST_WORD.search(line[start:m.start()])
                if word and word.group(1).lower() in _ABBREVIATIONS:
                    continue
            out.append(line[start:m.end()])
            start = m.end()
        out.append(line[start:])
    return [s for s in (p.strip() for p in out) if _LETTER.search(s)]


def _unit(v: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in v))
    return [x / norm for x in v] if norm else [0.0] * len(v)


def best_similarities(sentences: Sequence[Sequence[float]],
                      passages: Sequence[Sequence[float]]) -> list[float]:
    """For each sentence vector, its highest cosine similarity to any passage vector."""
    units = [_unit(p) for p in passages]
    best: list[float] = []
    for s in sentences:
        u = _unit(s)
        best.append(max((sum(a * b for a, b in zip(u, p, strict=True)) for p in units),
                        default=0.0))
    return best


@dataclass(frozen=True)
class Groundedness:
    sentences: int
    supported: int
    # Each sentence's best similarity, in answer order (for logs and the threshold's tuning).
    similarities: tuple[float, ...] = ()

    @property
    def score(self) -> float:
        return self.supported / self.sentences if self.sentences else 0.0


def groundedness(sentences: Sequence[Sequence[float]], passages: Sequence[Sequence[float]],
                 threshold: float) -> Groundedness:
    """supported / answer sentences, a sentence being supported at `threshold` or above."""
    best = best_similarities(sentences, passages)
    return Groundedness(len(best), sum(1 for b in best if b >= threshold), tuple(best))
