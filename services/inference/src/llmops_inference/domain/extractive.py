"""Extractive answers: the sentence of the retrieved passages that best answers the question.

What Haystack calls extractive QA, without a reader model: the answer is a sentence copied
from a passage, cited with that passage's marker, so it never says anything the documents do
not. A small generative model often answers "1", restates the question or invents a number
that is not in its context; the tenant's answer policy (`AnswerPolicy.answer_mode`) chooses:

- `generative`: the model's answer (the refusal checks of domain/refusal.py still apply);
- `extractive`: always the selected sentence, without generating;
- `hybrid`: the model's answer when the passages support it (`Extractor.supported`), else the
  selected sentence.

Candidates are the sentences of the best passages, in prompt order: wrapped lines joined,
headings (short blocks without punctuation) and questions (a FAQ's) left out. Each is scored by
- its cosine to the question (one embedding call for the question and the sentences),
- the share of the question's content terms it holds (domain/refusal.py's terms: whole
  English words, Korean character bigrams, so a Korean question gets a Korean sentence),
  each weighted by its rarity among the candidate sentences, and the share of the
  question's adjacent word pairs it holds adjacent too,
- a bonus when the question asks for a quantity, a time or a date and the sentence holds a
  number, and a small penalty per rank of its passage (best passages first).
Nothing here knows any expected answer: only the question and the passages are read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from llmops_inference.domain.groundedness import split_sentences, strip_markers
from llmops_inference.domain.model import ANSWER_MODES, EXTRACTIVE, GENERATIVE, HYBRID, Passage
from llmops_inference.domain.refusal import (
    EN_STOPWORDS,
    GroundingCheck,
    latin_stem,
    passage_terms,
    question_terms,
)
from llmops_inference.ports import Embedder

__all__ = ["ANSWER_MODES", "EXTRACTIVE", "GENERATIVE", "HYBRID", "Extract", "Extractor"]

# Lines that are not prose: headings, list items, table rows, quotes. A paragraph's wrapped
# lines are joined before it is cut into sentences ("expire\non March 31" is one sentence).
_BLOCK_START = re.compile(r"^\s*(?:#{1,6}\s|[-*+•·]\s|\d{1,2}[.)]\s|\||>)")
_HEADING = re.compile(r"^\s*#{1,6}\s")
_EMPHASIS = re.compile(r"(\*\*|__|`)")
_NUMBER = re.compile(r"\d")
_NUMBERS = re.compile(r"\d+(?:[.,:]\d+)*")
_NUMBER_WORDS = frozenset("""one two three four five six seven eight nine ten eleven twelve
twenty thirty forty fifty hundred thousand million twice half once first second third fourth
fifth sixth daily weekly monthly yearly annually""".split())
# Questions whose answer is a quantity, a duration, a time or a date.
_ASKS_NUMBER = re.compile(
    r"\b(?:how (?:many|much|long|often|far|early|late|old|soon)|when|what time|which day|"
    r"what date|how frequently|maximum|minimum|limit)\b|몇|얼마|언제|며칠|기간|금액",
    re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+")
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]")
_CLOSERS = "\"'\u201d\u2019)] "
_LATIN_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Candidate:
    """A sentence of a passage, as shown (emphasis marks removed, nothing else changed)."""

    text: str
    passage: Passage


@dataclass(frozen=True)
class Extract:
    """The selected sentence, its passage and its score; `answer` carries the citation."""

    text: str
    passage: Passage
    score: float
    # The best cosine of any candidate sentence to the question (None: not measured): where
    # even the closest sentence is far, the passages are near the topic but do not answer it
    # (domain/refusal.py `weak_answer`).
    similarity: float | None = None

    @property
    def answer(self) -> str:
        return f"{self.text} [{self.passage.marker}]"


@dataclass(frozen=True)
class Weights:
    similarity: float = 0.5
    overlap: float = 0.5
    phrase: float = 0.25
    number: float = 0.15
    rank: float = 0.03


def _is_heading(paragraph: str) -> bool:
    """A short block without sentence punctuation: a heading once markup is gone (ingestion
    stores Markdown and HTML as text, a heading as a paragraph of its own)."""
    return not _SENTENCE_END.search(paragraph) and len(_WORD.findall(paragraph)) <= 8


def _paragraphs(text: str) -> list[str]:
    """Prose paragraphs (wrapped lines joined), list items and table rows; no headings."""
    out: list[str] = []
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or _BLOCK_START.match(line):
            if current:
                out.append(" ".join(current))
                current = []
            if line and not _HEADING.match(line):
                out.append(line)
            continue
        current.append(line)
    if current:
        out.append(" ".join(current))
    return [p for p in out if not _is_heading(p)]


def sentences(text: str) -> list[str]:
    """The sentences of a passage, in order, as prose (see `_paragraphs`)."""
    out: list[str] = []
    for para in _paragraphs(text):
        out.extend(_EMPHASIS.sub("", s).strip() for s in split_sentences(para))
    # A fragment of one or two words ("Sources:", "Sick leave") answers nothing, nor does a
    # question (a FAQ's question line).
    return [s for s in out if (len(_WORD.findall(s)) >= 3 or _hangul_chars(s) >= 6)
            and not s.rstrip(_CLOSERS).endswith(("?", "\uff1f"))]


def _hangul_chars(text: str) -> int:
    return sum(1 for ch in text if "\uac00" <= ch <= "\ud7a3")


def candidates(passages: Sequence[Passage], max_passages: int, max_sentences: int
               ) -> list[Candidate]:
    out: list[Candidate] = []
    for p in passages[:max_passages]:
        out.extend(Candidate(s, p) for s in sentences(p.text))
    return out[:max_sentences]


def asks_for_number(question: str) -> bool:
    return bool(_ASKS_NUMBER.search(question))


def holds_number(text: str) -> bool:
    return bool(_NUMBER.search(text)) or bool(
        {w.lower() for w in _WORD.findall(text)} & _NUMBER_WORDS)


def overlap(question: str, sentence: str, weights: Mapping[str, float] | None = None) -> float:
    """Share of the question's content terms the sentence holds (0 when it has none), each
    term weighted (default 1; `term_weights` makes rare terms count more)."""
    wanted = question_terms(question)
    if not wanted:
        return 0.0
    w = weights or {}
    held = wanted & passage_terms([sentence])
    return math.fsum(w.get(t, 1.0) for t in held) / math.fsum(w.get(t, 1.0) for t in wanted)


def _content_words(text: str) -> list[str]:
    return [latin_stem(w) for w in _LATIN_WORD.findall(text.casefold())
            if w not in EN_STOPWORDS and len(w) > 1]


def phrase_overlap(question: str, sentence: str) -> float:
    """Share of the question's adjacent content-word pairs ("probation period") that occur
    adjacent in the sentence too (stopwords skipped in both): proximity, which a bag of
    terms misses."""
    words = _content_words(question)
    pairs = set(pairwise(words))
    if not pairs:
        return 0.0
    said = _content_words(sentence)
    return len(pairs & set(pairwise(said))) / len(pairs)


def term_weights(question: str, texts: Sequence[str]) -> dict[str, float]:
    """Inverse document frequency of the question's terms over the candidate sentences: a term
    in every sentence ("vacation" in a vacation policy) tells less than one in a single one."""
    found = [passage_terms([t]) for t in texts]
    n = len(found)
    return {t: math.log(1 + (n + 1) / (1 + sum(1 for f in found if t in f)))
            for t in question_terms(question)}


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    na = math.sqrt(math.fsum(x * x for x in a))
    nb = math.sqrt(math.fsum(x * x for x in b))
    if not na or not nb:
        return 0.0
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def rank(question: str, found: Sequence[Candidate], similarities: Sequence[float],
         weights: Weights = Weights()) -> list[tuple[float, Candidate]]:
    """Every candidate with its score, best first (ties: the earlier one); `similarities`: each
    candidate's cosine to the question."""
    wants_number = asks_for_number(question)
    ranks = {id(p): n for n, p in enumerate(dict.fromkeys(c.passage for c in found))}
    idf = term_weights(question, [c.text for c in found])
    scored: list[tuple[float, int, Candidate]] = []
    for i, (c, similarity) in enumerate(zip(found, similarities, strict=True)):
        score = (weights.similarity * similarity
                 + weights.overlap * overlap(question, c.text, idf)
                 + weights.phrase * phrase_overlap(question, c.text)
                 - weights.rank * ranks[id(c.passage)])
        if wants_number and holds_number(c.text):
            score += weights.number
        scored.append((score, i, c))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [(s, c) for s, _, c in scored]


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBERS.findall(strip_markers(text))}


def agrees(answer: str, question: str, sentence: str) -> bool:
    """A generated answer agrees with the extracted sentence when every number it states is in
    the sentence and at least half of what it adds to the question (its content terms not in
    the question) is in the sentence too."""
    if not numbers(answer) <= numbers(sentence):
        return False
    own = question_terms(strip_markers(answer)) - question_terms(question)
    if not own:
        return False
    return 2 * len(own & passage_terms([sentence])) >= len(own)


class Extractor:
    """Selects the answering sentence (one embedding call) and judges generated answers."""

    def __init__(self, embedder: Embedder, grounding: GroundingCheck | None = None, *,
                 min_groundedness: float = 0.5, max_passages: int = 3,
                 max_sentences: int = 48, weights: Weights = Weights()) -> None:
        self.embedder = embedder
        self.grounding = grounding
        self.min_groundedness = min_groundedness
        self.max_passages = max_passages
        self.max_sentences = max_sentences
        self.weights = weights

    async def extract(self, question: str, passages: Sequence[Passage]) -> Extract | None:
        """The best sentence of the first `max_passages` passages; None when they hold none."""
        found = candidates(passages, self.max_passages, self.max_sentences)
        if not found:
            return None
        vectors = (await self.embedder.embed_texts([question, *(c.text for c in found)])).vectors
        similarities = [_cosine(vectors[0], v) for v in vectors[1:]]
        score, best = rank(question, found, similarities, self.weights)[0]
        return Extract(best.text, best.passage, score, max(similarities))

    async def supported(self, answer: str, question: str, passages: Sequence[Passage],
                        extract: Extract | None = None) -> bool:
        """Whether a generated answer rests on the passages: it says something they say and
        the question does not (not "1" or "The answer is:"), every number in it occurs in
        them, and (with a grounding check) enough of its sentences are supported. With the
        extracted sentence given, it must also agree with it (`agrees`): an answer grounded in
        some other passage ("available in 20 regions" for the parental leave) is not kept."""
        texts = [p.text for p in passages]
        said = passage_terms(texts)
        own = question_terms(strip_markers(answer)) - question_terms(question)
        if not own & said:
            return False
        if not numbers(answer) <= numbers(" ".join(texts)):
            return False
        if extract is not None and not agrees(answer, question, extract.text):
            return False
        if self.grounding is None:
            return True
        score = await self.grounding.score(answer, passages)
        return score is not None and score >= self.min_groundedness
