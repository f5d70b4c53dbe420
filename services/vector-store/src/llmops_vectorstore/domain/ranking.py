"""How hybrid search ranks: the BM25/vector weight, the fusion of the two result lists, and
the question words left out of the keyword half.

Chosen on the evaluation set (bench/hybrid_search_review.py; the table is in docs/testing.md,
"Hybrid search review"). Pure functions and data: the store applies them.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass


class Fusion(enum.Enum):
    # Each list's scores scaled to 0..1, then weighted: a BM25 list whose best hit matched
    # only "do I" still scores 1 for it.
    RELATIVE_SCORE = "relative_score"
    # Reciprocal rank fusion: only the ranks count.
    RANKED = "ranked"


# Words of a question that say nothing about its topic ("What do I do if my laptop is
# lost?"): BM25 on them ranks whichever chunk repeats "do I" (an FAQ) above the one about
# laptops. English only: Korean particles attach to their words, and word-split Korean
# interrogatives (어디, 얼마) are rarely in the documents anyway.
QUESTION_STOPWORDS = frozenset("""
a about am an and any are as at be been being but by can could did do does doing done for
from get got had has have having how i if in into is it its me my myself of on or our ours
please shall should so some tell than that the their them then there these they this those
to us was we were what when where which while who whom whose why will with would you your
""".split())
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class HybridRanking:
    # Weight of the vector half (1: vector only, 0: BM25 only).
    alpha: float = 0.5
    fusion: Fusion = Fusion.RELATIVE_SCORE
    # Leave QUESTION_STOPWORDS out of the keyword half (the vector half gets the whole text).
    question_stopwords: bool = False

    def __post_init__(self) -> None:
        if math.isnan(self.alpha) or not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be within 0..1, got {self.alpha}")

    def keyword_text(self, text: str) -> str:
        """The text BM25 searches: without question words when so configured; the whole text
        when nothing else is left (a question made only of them)."""
        if not self.question_stopwords:
            return text
        kept = [w for w in _WORD.findall(text) if w.casefold() not in QUESTION_STOPWORDS]
        return " ".join(kept) if kept else text


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; 0 when either vector is zero or their lengths differ."""
    if len(a) != len(b):
        return 0.0
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(math.fsum(x * x for x in a))
    nb = math.sqrt(math.fsum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
