"""The prompt's context: the retrieved passages that go into the prompt, within a token budget.

- Best passages first: the retrieval order is kept, and the budget is filled in that order.
- Overlapping chunks merged: ingestion cuts documents into token windows that overlap (40
  tokens by default); two retrieved neighbours of one document become one passage, their
  shared text once, at the rank of the better one.
- Nothing cut mid-sentence: a passage that does not fit whole keeps the leading sentences that
  fit (the best passage keeps at least its first one, so retrieval that found something never
  leaves the prompt empty); the passages after it are still tried, a shorter one may fit.
- Tokens are the serving model's, estimated from above without its tokenizer (see
  `estimate_tokens`), so the budget holds for any byte-level BPE model.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from llmops_inference.domain.model import Passage

# A sentence ends at . ! ? … (then closing quotes/brackets and a space or the end), at a CJK
# full stop, or at a line break (headings and list items end there).
_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s|$)|[\u3002\uff01\uff1f]|\n")
# The shortest shared text taken as the overlap of two neighbouring chunks.
_MIN_OVERLAP = 16


def estimate_tokens(text: str) -> int:
    """An upper estimate of the tokens a byte-level BPE tokenizer makes of `text`.

    Non-ASCII characters count their UTF-8 bytes (such a tokenizer never makes more tokens
    than bytes; SmolLM2 makes about one per byte of Korean), digits one each (many tokenizers
    split numbers into digits), other ASCII characters one per 3 (English averages 4 to 5 per
    token). On samples/corpus, SmolLM2's tokenizer stays under this estimate for every file
    (English 70-80% of it, Korean about 97%).
    """
    non_ascii = digits = other = 0
    for ch in text:
        if ch.isascii():
            if ch.isdigit():
                digits += 1
            elif not ch.isspace():
                other += 1
        else:
            non_ascii += len(ch.encode("utf-8"))
    return non_ascii + digits + math.ceil(other / 3)


@dataclass(frozen=True)
class ContextBudget:
    # Estimated tokens of passage text in the prompt (the template, the question and the
    # answer come on top); 0: no limit.
    max_tokens: int = 1200
    # Estimated tokens of passage text the prompt shows after the question-focused cut
    # (domain/focus.py); 0: the passages whole.
    focus_tokens: int = 0

    def __post_init__(self) -> None:
        if self.max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        if self.focus_tokens < 0:
            raise ValueError("focus_tokens must be >= 0")


def join_overlapping(first: str, second: str) -> str:
    """`first` then `second`, the text that ends one and starts the other written once."""
    probe = second[:_MIN_OVERLAP]
    if len(probe) == _MIN_OVERLAP:
        at = first.find(probe)
        while at >= 0:
            if second.startswith(first[at:]):
                return first[:at] + second
            at = first.find(probe, at + 1)
    return f"{first.rstrip()} {second.lstrip()}"


@dataclass
class _Group:
    """Neighbouring chunks of one document, merged."""

    passage: Passage
    first: int
    last: int
    chunk_ids: list[str] = field(default_factory=list)


def merge_neighbours(passages: Sequence[Passage]) -> list[Passage]:
    """Chunks of one document with adjacent indexes become one passage, at the best rank."""
    groups: list[_Group] = []
    seen: set[str] = set()
    for p in passages:
        if p.chunk_id in seen:
            continue
        seen.add(p.chunk_id)
        i = p.chunk_index
        group = next((g for g in groups if i >= 0 and g.passage.document_id == p.document_id
                      and i in (g.first - 1, g.last + 1)), None)
        if group is None:
            groups.append(_Group(p, i, i, [p.chunk_id]))
            continue
        head = group.passage
        after = i == group.last + 1
        text = join_overlapping(head.text, p.text) if after else join_overlapping(p.text,
                                                                                  head.text)
        group.passage = dataclasses.replace(
            head, text=text, score=max(head.score, p.score),
            similarity=_best(head.similarity, p.similarity))
        if after:
            group.last = i
            group.chunk_ids.append(p.chunk_id)
        else:
            group.first = i
            group.chunk_ids.insert(0, p.chunk_id)
    return [dataclasses.replace(g.passage, chunk_ids=tuple(g.chunk_ids)) if len(g.chunk_ids) > 1
            else g.passage for g in groups]


def _best(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def leading_sentences(text: str, max_tokens: int) -> str:
    """The longest run of whole sentences from the start of `text` within `max_tokens`."""
    best = ""
    for m in _END.finditer(text):
        candidate = text[:m.end()].rstrip()
        if estimate_tokens(candidate) > max_tokens:
            break
        best = candidate
    if not best and estimate_tokens(text) <= max_tokens:
        return text
    return best


def first_sentence(text: str) -> str:
    m = _END.search(text)
    return text[:m.end()].rstrip() if m else text


def build_context(passages: Sequence[Passage], budget: ContextBudget) -> list[Passage]:
    """The passages for the prompt (see module doc), renumbered [1..n] in rank order."""
    merged = merge_neighbours(passages)
    if budget.max_tokens == 0:
        kept = merged
    else:
        kept = []
        left = budget.max_tokens
        for p in merged:
            cost = estimate_tokens(p.text)
            if cost <= left:
                kept.append(p)
                left -= cost
                continue
            part = leading_sentences(p.text, left)
            if not part and not kept:
                part = first_sentence(p.text)
            if part.strip():
                kept.append(dataclasses.replace(p, text=part))
                left = max(0, left - estimate_tokens(part))
    return [dataclasses.replace(p, marker=n) for n, p in enumerate(kept, start=1)]
