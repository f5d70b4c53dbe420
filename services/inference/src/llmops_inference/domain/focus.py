"""Question-focused context: only the lines of the passages that bear on the question.

A small model on a CPU spends most of an answer prefilling the prompt (SmolLM2-135M in
llama.cpp on two cores: about 250 prompt tokens a second), and the passages are most of the
prompt: four whole chunks of the sample corpus are some 650 tokens, of which the answer needs
one or two sentences. What RECOMP and LLMLingua call extractive compression, without a model:
each passage is cut into units (sentences and lines), a FAQ's question line or a heading kept
together with the line after it, and each unit is scored against the question with the
extractive answer's lexical signals (domain/extractive.py: the share of the question's content
terms it holds, weighted by rarity; adjacent word pairs; a number where the question asks for
a quantity). The best units, across passages and down to a quarter of the best one's score,
fill `focus_tokens` (estimated like the budget, domain/context.py); the best passage always
keeps its best unit. Each passage keeps its marker and shows its chosen units in document
order, "…" where text was left out; a passage with no unit chosen leaves the prompt (its
marker stays unused, so citations are unchanged).

Only the prompt is focused: extraction, citations and the grounding checks read the whole
passages. Nothing here knows any expected answer: only the question and the passages are read.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from llmops_inference.domain.context import estimate_tokens
from llmops_inference.domain.extractive import (
    asks_for_number,
    holds_number,
    overlap,
    phrase_overlap,
    term_weights,
)
from llmops_inference.domain.model import Passage

# A sentence ends at . ! ? … (then closing quotes/brackets before a space or the end) or at a
# CJK full stop.
_SENTENCE = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s|$)|[\u3002\uff01\uff1f]")
_PARAGRAPH = re.compile(r"\n\s*\n")
# Lines that are not wrapped prose: headings, list items, table rows.
_OWN_LINE = re.compile(r"^\s*(?:#{1,6}\s|[-*+\u2022\u00b7]\s|\d{1,2}[.)]\s|\|)")
# Units that lead into the next one: a question (a FAQ's) or a heading (no sentence end).
_SENTENCE_END = re.compile(r"[.!\u2026\u3002\uff01]")
_GAP = " \u2026 "
_PHRASE_WEIGHT = 0.5
_NUMBER_BONUS = 0.15
# A unit must score at least this share of the best unit's score to be shown.
_MIN_SHARE = 0.25


@dataclass(frozen=True)
class _Group:
    passage: int  # rank of its passage
    position: int  # order within the passage
    text: str
    score: float
    cost: int


def _lines(paragraph: str) -> list[str]:
    """A paragraph's wrapped lines joined; headings, list items and table rows kept apart."""
    out: list[str] = []
    apart = True
    for raw in paragraph.splitlines():
        line = raw.strip()
        if not line:
            continue
        own = bool(_OWN_LINE.match(line))
        if out and not own and not apart:
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
        apart = own and line.startswith("#")
    return out


def units(text: str) -> list[str]:
    """Sentences of `text` (wrapped lines joined first), headings and list items, in order."""
    out: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        for line in _lines(paragraph):
            start = 0
            for m in _SENTENCE.finditer(line):
                out.append(line[start:m.end()].strip())
                start = m.end()
            out.append(line[start:].strip())
    return [u for u in out if u]


def _is_question(unit: str) -> bool:
    return unit.rstrip("\"'\u201d\u2019)] ").endswith(("?", "\uff1f"))


def groups(text: str) -> list[str]:
    """`units`, each question or heading joined with the unit after it (a heading as
    "Heading: text")."""
    out: list[str] = []
    pending = ""
    for u in units(text):
        if _is_question(u):
            pending = f"{pending}{u} "
        elif not _SENTENCE_END.search(u):
            pending = f"{pending}{u}: "
        else:
            out.append(pending + u)
            pending = ""
    if pending:
        out.append(pending.rstrip(": "))
    return out


def score(question: str, text: str, idf: dict[str, float], wants_number: bool) -> float:
    s = overlap(question, text, idf) + _PHRASE_WEIGHT * phrase_overlap(question, text)
    if wants_number and holds_number(text):
        s += _NUMBER_BONUS
    return s


def focus(question: str, passages: Sequence[Passage], focus_tokens: int) -> list[Passage]:
    """The passages with only their best units (see module doc); 0: the passages unchanged."""
    if focus_tokens <= 0 or not passages:
        return list(passages)
    split = [groups(p.text) for p in passages]
    idf = term_weights(question, [g for gs in split for g in gs])
    wants_number = asks_for_number(question)
    scored = [_Group(rank, pos, g, score(question, g, idf, wants_number), estimate_tokens(g))
              for rank, gs in enumerate(split) for pos, g in enumerate(gs)]
    chosen: set[tuple[int, int]] = set()
    left = focus_tokens
    best_first = sorted(scored, key=lambda g: (-g.score, g.passage, g.position))
    lead = next((g for g in best_first if g.passage == 0), None)
    if lead is not None:
        chosen.add((lead.passage, lead.position))
        left -= lead.cost
    floor = _MIN_SHARE * best_first[0].score if best_first else 0.0
    for g in best_first:
        if g.score <= 0 or g.score < floor:
            break
        if (g.passage, g.position) not in chosen and g.cost <= left:
            chosen.add((g.passage, g.position))
            left -= g.cost
    out: list[Passage] = []
    for rank, (p, gs) in enumerate(zip(passages, split, strict=True)):
        kept = [pos for pos in range(len(gs)) if (rank, pos) in chosen]
        if not kept:
            continue
        text = gs[kept[0]]
        for prev, pos in pairwise(kept):
            text += (" " if pos == prev + 1 else _GAP) + gs[pos]
        if kept[0] > 0:
            text = _GAP.lstrip() + text
        if kept[-1] < len(gs) - 1:
            text += _GAP.rstrip()
        out.append(dataclasses.replace(p, text=text))
    return out
