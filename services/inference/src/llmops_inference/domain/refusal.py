""""The documents do not cover this": when the platform answers that instead of generating.

Three checks, each set per tenant (an `AnswerPolicy`; None turns a check off):

- weak retrieval, before generation: nothing was retrieved; or the best cosine between the
  question and a retrieved chunk (SearchHit.similarity) is under `min_retrieval_score` (the
  fused hybrid score cannot serve: it is relative to its result set, so the best hit of any
  question scores high; passages whose similarity the store did not report, from an older
  vector-store, never trigger it); or under `min_term_coverage` of the question's content
  terms occur in the passages (see `term_coverage`: independent of the embedding model, it
  is what refuses Korean questions while the model is English-only).
- weak answer, after sentence selection (extractive and hybrid modes, `weak_answer`): no
  sentence of the passages is as close as `min_sentence_similarity` (cosine) to the question;
  it catches questions near a document's topic that the passages do not answer.
- unsupported answer, after generation (Generate only: a stream has shown its text already):
  the share of the answer's sentences supported by the passages (groundedness.py, at the
  quality threshold) is under `min_groundedness`.

The answer is then a fixed message in the question's language (Korean for a question written
mostly in Hangul, else English; `MESSAGES` holds the translations), without citations, and the
answer carries the reason (GenerateResponse.refusal, InferenceCompleted.refusal).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from llmops_inference.domain.groundedness import groundedness, split_sentences
from llmops_inference.domain.model import (
    ANSWER_MODES,
    GENERATIVE,
    Answer,
    GuardedPassage,
    Passage,
    Verdict,
)
from llmops_inference.ports import Embedder

WEAK_RETRIEVAL = "WEAK_RETRIEVAL"
UNSUPPORTED_ANSWER = "UNSUPPORTED_ANSWER"

MESSAGES: Mapping[str, str] = {
    "en": "The documents I can search do not cover this question, so I cannot answer it "
          "from them.",
    "ko": "검색할 수 있는 문서에는 이 질문에 대한 내용이 없어 답변드릴 수 없습니다.",
}


def language(text: str) -> str:
    """"ko" when most of the letters are Hangul, else "en"."""
    letters = [ch for ch in text if ch.isalpha()]
    hangul = sum(1 for ch in letters if "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff"
                 or "\u3130" <= ch <= "\u318f")
    return "ko" if letters and 2 * hangul >= len(letters) else "en"


def message(question: str) -> str:
    return MESSAGES.get(language(question), MESSAGES["en"])


# Term coverage: the share of the question's content terms found in the retrieved passages.
# It does not depend on the embedding model, so it also works where the model cannot tell
# one text of a language it does not know from another (an English-only model on Korean).
# Latin-script words are compared by stem (`latin_stem`); Korean words, whose particles
# and endings attach to them, as character bigrams once a common ending is removed.
_LATIN = re.compile(r"[a-z0-9]+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]+")
EN_STOPWORDS = frozenset("""a about after am an and any are as at be been before by can could
did do does doing for from get give got had has have how i if in into is it its me much many
my of on or our please shall should so some tell than that the their them then there these
they this those to us use was we were what when where which who whom whose why will with
would you your""".split())
# Korean interrogatives and request words: in every question, about nothing.
_KO_STOPWORDS = frozenset("어디 얼마 얼마나 며칠 무엇 언제 누구 누가 어떻게 어떤 무슨 알려 주세요"
                          .split())
# Verb endings: the question's predicate ("있나요", "하나요") and connectives ("야근하면", "가면",
# "초기화하려면", "잃어버렸는데"). A one-syllable verb before one ("있-", "하-", "받-", "가-") is
# no content term: the word is dropped.
_KO_VERB_ENDINGS = frozenset("인가요 입니까 습니까 한가요 나요 가요 까요 세요 하면 으면 이면 려면 는데 면"
                             .split())
# Longest first: one is removed from the end of a Korean word (a particle leaving at least 2
# syllables, a verb ending at least 1).
_KO_ENDINGS = tuple(sorted(_KO_VERB_ENDINGS | set("에서 으로 까지 부터 은 는 이 가 을 를 의 에 로 도 만"
                                                  .split()), key=len, reverse=True))


_VOWEL = re.compile(r"[aeiouy]")
# Derivational and inflectional endings, longest first; one is removed (see `latin_stem`).
_SUFFIXES = ("ation", "ment", "ingly", "edly", "ing", "ion", "ed", "ly")
_MIN_STEM = {"ing": 2, "ed": 2, "ly": 4}


def latin_stem(word: str) -> str:
    """A light rule-based English stemmer (after Porter's step 1), so that the forms of one
    word meet: "promoted", "promotes", "promotion(s)" and "promote" all give "promot",
    "policies" and "policy" "polici", "decided" and "decides" "decid", "quickly" "quick",
    "used" and "use" "us". Numbers and one- or two-letter words are left alone. Both sides of
    a comparison (question and passages) go through it, so a stem need not be a word, only
    the same one for every form."""
    if len(word) <= 2 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "i"
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    for suffix in _SUFFIXES:
        if not word.endswith(suffix):
            continue
        stem = word[:-len(suffix)]
        if suffix == "ed" and stem.endswith("e"):
            if len(stem) < 3:
                continue  # "need", "feed"
            stem += "e"  # "-eed" loses its "d" only: "agreed" as "agree"
        # What is left must be a stem with a vowel, of 2+ letters after -ed/-ing, 4+ before
        # -ly and 3+ otherwise ("bring", "early", "only" stay).
        if len(stem) >= _MIN_STEM.get(suffix, 3) and _VOWEL.search(stem) and stem != word:
            word = stem
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeioulsz":
                word = word[:-1]  # "submitted" -> "submit", "stopping" -> "stop"
            break
    if len(word) > 2 and word.endswith("e"):
        word = word[:-1]  # "promote" as "promot(ed)", "taxe(s)" as "tax", "use" as "us(ed)"
    if len(word) > 3 and word.endswith("y") and word[-2] not in "aeiou":
        word = word[:-1] + "i"  # "policy" as "polici(es)", "carry" as "carri(ed)"
    return word


def _korean(word: str) -> str:
    for ending in _KO_ENDINGS:
        rest = len(word) - len(ending)
        if word.endswith(ending) and (rest >= 2 or (rest == 1 and ending in _KO_VERB_ENDINGS)):
            return word[:-len(ending)]
    return word


def _bigrams(word: str) -> set[str]:
    return {word[i:i + 2] for i in range(len(word) - 1)}


def question_terms(question: str) -> set[str]:
    text = question.casefold()
    terms = {latin_stem(w) for w in _LATIN.findall(text) if w not in EN_STOPWORDS and len(w) > 1}
    for word in _HANGUL.findall(text):
        stem = _korean(word)
        if stem not in _KO_STOPWORDS and len(stem) >= 2:
            terms |= _bigrams(stem)
    return terms


def passage_terms(texts: Iterable[str]) -> set[str]:
    terms: set[str] = set()
    for text in texts:
        folded = text.casefold()
        terms |= {latin_stem(w) for w in _LATIN.findall(folded)}
        for word in _HANGUL.findall(folded):
            terms |= _bigrams(word)
    return terms


def term_coverage(question: str, passages: Sequence[Passage]) -> float | None:
    """Share of the question's content terms in the passages; None: it has none."""
    wanted = question_terms(question)
    if not wanted:
        return None
    return len(wanted & passage_terms(p.text for p in passages)) / len(wanted)


def _check(name: str, value: float | None) -> None:
    if value is not None and (math.isnan(value) or not -1.0 <= value <= 1.0):
        raise ValueError(f"{name} must be within -1..1 or None, got {value}")


@dataclass(frozen=True)
class AnswerPolicy:
    # Refuse before generating when the best retrieved chunk's cosine to the question is
    # below this (None: never). Measured with bench/answer_quality.py (service README).
    min_retrieval_score: float | None = 0.2
    # Refuse a generated answer whose supported-sentence share is below this (None: never).
    min_groundedness: float | None = None
    # Refuse before generating when fewer than this share of the question's content terms
    # occur in the retrieved passages (None: never).
    min_term_coverage: float | None = 0.5
    # generative | extractive | hybrid (domain/extractive.py): what answers a covered question.
    answer_mode: str = GENERATIVE
    # Refuse when no sentence of the passages comes this close (cosine) to the question: the
    # passages are near its topic but none says what it asks (`weak_answer`; None: never).
    # Applies where a sentence is selected (extractive and hybrid modes).
    min_sentence_similarity: float | None = 0.38

    def __post_init__(self) -> None:
        _check("min_retrieval_score", self.min_retrieval_score)
        _check("min_groundedness", self.min_groundedness)
        _check("min_term_coverage", self.min_term_coverage)
        _check("min_sentence_similarity", self.min_sentence_similarity)
        if self.answer_mode not in ANSWER_MODES:
            raise ValueError(f"answer_mode must be one of {', '.join(ANSWER_MODES)}, "
                             f"got {self.answer_mode!r}")


@dataclass(frozen=True)
class AnswerPolicies:
    """The default policy and the tenants that override it."""

    default: AnswerPolicy = field(default_factory=AnswerPolicy)
    tenants: Mapping[str, AnswerPolicy] = field(default_factory=dict)

    def for_tenant(self, tenant: str) -> AnswerPolicy:
        return self.tenants.get(tenant, self.default)


def best_similarity(passages: Sequence[Passage]) -> float | None:
    known = [p.similarity for p in passages if p.similarity is not None]
    return max(known) if known else None


def not_covered(question: str, reason: str, retrieved: Sequence[Passage],
                guarded: Sequence[GuardedPassage], input_safety: Verdict, searched: str,
                vector: Sequence[float]) -> Answer:
    """The answer refused before generation: no model, no prompt, no output check."""
    return Answer(message(question), [], None, None, input_safety, Verdict.ALLOW, blocked=False,
                  retrieved=list(retrieved), guarded=list(guarded), searched_text=searched,
                  query_vector=list(vector), checked=("input",), refusal=reason,
                  retrieval_score=best_similarity(retrieved))


def weak_retrieval(policy: AnswerPolicy, passages: Sequence[Passage], question: str) -> bool:
    """Nothing retrieved, the best chunk too far from the question, or too few of the
    question's terms in the passages (each check off where the policy says None)."""
    if policy.min_retrieval_score is None and policy.min_term_coverage is None:
        return False
    if not passages:
        return True
    best = best_similarity(passages)
    if policy.min_retrieval_score is not None and best is not None \
            and best < policy.min_retrieval_score:
        return True
    if policy.min_term_coverage is None:
        return False
    coverage = term_coverage(question, passages)
    return coverage is not None and coverage < policy.min_term_coverage


def weak_answer(policy: AnswerPolicy, similarity: float | None) -> bool:
    """After sentence selection: even the question's closest sentence in the passages is under
    `min_sentence_similarity` (the best cosine of `Extract.similarity`). A question close to
    a document's topic passes the checks before generation (its best chunk scores well, its
    words occur in the passages: "the guest Wi-Fi password" beside the password rules), but
    no single sentence says what it asks."""
    return policy.min_sentence_similarity is not None and similarity is not None \
        and similarity < policy.min_sentence_similarity


class GroundingCheck:
    """Scores an answer against its passages with one embedding call (the unsupported check)."""

    def __init__(self, embedder: Embedder, threshold: float, max_sentences: int = 64,
                 max_passage_chars: int = 2_000) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.max_sentences = max_sentences
        self.max_passage_chars = max_passage_chars

    async def score(self, answer: str, passages: Sequence[Passage]) -> float | None:
        """Supported share of the answer's sentences; None when there is nothing to score."""
        sentences = split_sentences(answer)[:self.max_sentences]
        texts = [p.text[:self.max_passage_chars] for p in passages if p.text.strip()]
        if not sentences or not texts:
            return None
        vectors = (await self.embedder.embed_texts(sentences + texts)).vectors
        n = len(sentences)
        return groundedness(vectors[:n], vectors[n:], self.threshold).score

    async def unsupported(self, policy: AnswerPolicy, answer: str,
                          passages: Sequence[Passage]) -> bool:
        if policy.min_groundedness is None:
            return False
        score = await self.score(answer, passages)
        return score is not None and score < policy.min_groundedness
