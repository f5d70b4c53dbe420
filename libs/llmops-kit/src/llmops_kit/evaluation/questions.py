"""Evaluation questions (the samples/eval/questions.jsonl format): loading, fact matching and
the retrieval/answer metrics of a set.

One implementation for bench/answer_quality.py (through bench/eval_set.py) and `llmops eval`
(llmops_kit.evaluation.runs); no I/O beyond reading the file. See samples/eval/README.md.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LANGUAGES = ("en", "ko")

# 1,000,000 -> 1000000 (a separator between digit groups, never a decimal point).
_THOUSANDS = re.compile(r"(?<=\d)[,\u00a0\u202f](?=\d{3}(?!\d))")
_SPACE = re.compile(r"\s+")
_ASCII_WORD = re.compile(r"[a-z0-9]")
_TAG = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S | re.I)


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    lang: str
    question: str
    # The corpus file that answers it; None: the corpus does not (the answer is a refusal).
    document: str | None
    # Accepted variants of the fact the answer must hold (any one suffices).
    facts: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        return self.document is not None


def load(path: Path) -> list[EvalQuestion]:
    return parse(path.read_text(encoding="utf-8"), str(path))


def parse(text: str, source: str = "<records>") -> list[EvalQuestion]:
    """Questions from JSON lines (`source` names them in errors)."""
    path = source
    out: list[EvalQuestion] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            q = EvalQuestion(str(raw["id"]), str(raw["lang"]), str(raw["question"]),
                             raw.get("document"), tuple(str(f) for f in raw.get("facts", ())))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not an evaluation question ({exc})") from None
        if q.lang not in LANGUAGES:
            raise ValueError(f"{path}:{number}: lang must be one of {LANGUAGES}, got {q.lang!r}")
        if q.answerable != bool(q.facts):
            raise ValueError(f"{path}:{number}: an answerable question needs facts, "
                             "an unanswerable one has none")
        out.append(q)
    ids = [q.id for q in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate ids")
    return out


HALVES = ("tune", "held-out")
_ORDINAL = re.compile(r"(\d+)$")


def half(question: EvalQuestion) -> str:
    """Which half of the set a question is in, for held-out honesty: settings are chosen on
    the "tune" half (odd numbers: en-a01, en-a03, ...) and the "held-out" half (even numbers)
    is reported separately."""
    m = _ORDINAL.search(question.id)
    return "tune" if m is None or int(m.group(1)) % 2 else "held-out"


def normalise(text: str) -> str:
    """Lower case, NFKC, digit-group separators removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _THOUSANDS.sub("", text)
    return _SPACE.sub(" ", text).strip()


def plain_text(raw: str) -> str:
    """A corpus file's visible text (HTML tags, scripts and styles removed)."""
    return _TAG.sub(" ", raw)


def _bounded(hay: str, needle: str, at: int) -> bool:
    """ASCII words and numbers match whole: "5" is not in "15", "no" not in "not"; Korean is
    matched inside words (particles attach to them: "5일의")."""
    end = at + len(needle)
    before = hay[at - 1] if at > 0 else " "
    after = hay[end] if end < len(hay) else " "
    if _ASCII_WORD.match(needle[0]) and _ASCII_WORD.match(before):
        return False
    return not (_ASCII_WORD.match(needle[-1]) and _ASCII_WORD.match(after))


def holds_fact(answer: str, facts: Iterable[str]) -> bool:
    hay = normalise(answer)
    for fact in facts:
        needle = normalise(fact)
        at = hay.find(needle)
        while needle and at >= 0:
            if _bounded(hay, needle, at):
                return True
            at = hay.find(needle, at + 1)
    return False


@dataclass
class Outcome:
    """What one question got: retrieval, and (with generation) the answer."""

    question: EvalQuestion
    # Document ids of the retrieved passages, best first.
    retrieved: Sequence[str]
    cited: Sequence[str] = ()
    answer: str = ""
    refused: bool = False
    generated: bool = False


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


@dataclass
class Scores:
    questions: int = 0
    answerable: int = 0
    unanswerable: int = 0
    recall_at_5: float | None = None
    mrr: float | None = None
    cited_right_document: float | None = None
    holds_fact: float | None = None
    refused_when_not_covered: float | None = None
    refused_when_covered: float | None = None
    misses: list[str] = field(default_factory=list)


def rank_of(outcome: Outcome) -> int | None:
    """1-based rank of the answering document among the retrieved, None when absent."""
    doc = outcome.question.document
    for i, d in enumerate(outcome.retrieved, start=1):
        if d == doc:
            return i
    return None


def score(outcomes: Sequence[Outcome], k: int = 5) -> Scores:
    """Retrieval metrics over the answerable questions; answer metrics over the generated ones.

    recall@k: the answering document among the first k retrieved; MRR: mean of 1/rank (0 when
    not retrieved); cited: the answer cites the answering document; holds: the answer holds
    one of the fact's variants (a refusal holds nothing); refusals: the share refused of the
    unanswerable (should be high) and of the answerable (false refusals, should be low).
    """
    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    s = Scores(len(outcomes), len(answerable), len(unanswerable))
    ranks = [rank_of(o) for o in answerable]
    s.recall_at_5 = _rate(sum(1 for r in ranks if r is not None and r <= k), len(answerable))
    s.mrr = (sum(1 / r for r in ranks if r is not None) / len(answerable)) if answerable else None
    s.misses = [o.question.id for o, r in zip(answerable, ranks, strict=True)
                if r is None or r > k]
    gen = [o for o in answerable if o.generated]
    if gen:
        s.cited_right_document = _rate(
            sum(1 for o in gen if not o.refused and o.question.document in o.cited), len(gen))
        s.holds_fact = _rate(
            sum(1 for o in gen if not o.refused and holds_fact(o.answer, o.question.facts)),
            len(gen))
        s.refused_when_covered = _rate(sum(1 for o in gen if o.refused), len(gen))
    gen_x = [o for o in unanswerable if o.generated]
    if gen_x:
        s.refused_when_not_covered = _rate(sum(1 for o in gen_x if o.refused), len(gen_x))
    return s


def by_language(outcomes: Sequence[Outcome], k: int = 5, halves: bool = False
                ) -> dict[str, Scores]:
    """Scores per language, and "all"; with `halves`, also per language and half
    ("en tune", "en held-out", ...: see `half`)."""
    out = {lang: score([o for o in outcomes if o.question.lang == lang], k)
           for lang in LANGUAGES}
    if halves:
        for lang in LANGUAGES:
            for h in HALVES:
                group = [o for o in outcomes if o.question.lang == lang and half(o.question) == h]
                if group:
                    out[f"{lang} {h}"] = score(group, k)
    out["all"] = score(outcomes, k)
    return out
