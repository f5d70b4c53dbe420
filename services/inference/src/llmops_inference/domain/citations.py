"""Which passages an answer rests on."""

from __future__ import annotations

import re

from llmops_inference.domain.model import Passage

_MARKER = re.compile(r"\[(\d{1,2})\]")
_WORD = re.compile(r"\w+")
# Words too common to say which passage an answer came from.
_STOPWORDS = frozenset("""a an and are as at be by can do does for from has have how i if in is it
its my of on or our the their there this to was what when where which who will with you your
""".split())


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def cited(answer: str, passages: list[Passage]) -> list[Passage]:
    """The passages an answer rests on.

    Those it cites with [n] markers when it does. Small models often cite nothing (or markers
    that do not exist); then the answer is attributed by overlap: the passages holding at least
    half as many of the answer's words and numbers as the best one, in retrieval order. An
    answer that shares nothing with any passage cites the top-ranked one.
    """
    by_marker = {p.marker: p for p in passages}
    picked = [by_marker[n] for n in dict.fromkeys(int(m) for m in _MARKER.findall(answer))
              if n in by_marker]
    if picked or not passages:
        return picked
    terms = _terms(_MARKER.sub(" ", answer))
    overlap = [len(terms & _terms(p.text)) for p in passages]
    best = max(overlap)
    if best == 0:
        return passages[:1]
    return [p for p, n in zip(passages, overlap, strict=True) if 2 * n >= best]
