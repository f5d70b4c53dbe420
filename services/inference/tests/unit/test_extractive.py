"""The extractive selector picks the passage sentence that answers the question, in the
question's language, cites its passage and never says anything the passages do not."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

import pytest

from llmops_inference.domain.extractive import (
    Extractor,
    agrees,
    asks_for_number,
    candidates,
    numbers,
    phrase_overlap,
    sentences,
)
from llmops_inference.domain.model import Embeddings, Passage

pytestmark = pytest.mark.unit

VACATION = """# Vacation and leave policy

Every full-time employee accrues **25 days of paid vacation** per calendar year, credited
monthly (about 2.08 days at the start of each month). Part-time employees accrue vacation in
proportion to their contracted hours.

## Carry-over

Up to 5 unused vacation days can be carried over into the next year. Carried-over days expire
on March 31 if they are not taken. Days beyond the carry-over limit are forfeited on January 1.
"""

SECURITY = """## Passwords

Passwords must be at least 14 characters long and unique per system. Use the company password
manager to create and store them.

## Lost devices

If your laptop or phone is lost or stolen, tell the security team at once at
security@example.com so the device can be wiped remotely.
"""

BENEFITS_KO = """## 식대와 간식

점심 식대는 월 20만 원까지 법인 카드로 지원됩니다. 야근으로 오후 8시 이후까지 근무하는 경우에는
저녁 식대로 1회 1만 5천 원이 추가로 지원됩니다.

## 경조사 지원

본인 결혼 시에는 5일의 경조 휴가와 경조금 100만 원이 지급됩니다. 자녀 출산 시에는 축하금 50만 원이
지급됩니다.
"""

_TOKEN = re.compile(r"[^\W_]+")


class BagOfWords:
    """A deterministic stand-in for the embedding model: hashed word counts (and Hangul
    bigrams), so texts that share words are close."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed_texts(self, texts: Sequence[str]) -> Embeddings:
        self.calls.append(list(texts))
        return Embeddings([self.vector(t) for t in texts], "bag-of-words")

    async def model_name(self) -> str:
        return "bag-of-words"

    @staticmethod
    def vector(text: str) -> list[float]:
        v = [0.0] * 64
        for w in _TOKEN.findall(text.lower()):
            grams = [w[i:i + 2] for i in range(len(w) - 1)] if not w.isascii() else [w]
            for g in grams:
                v[int(hashlib.sha1(g.encode()).hexdigest(), 16) % 64] += 1.0
        return v


def passage(marker: int, doc: str, text: str) -> Passage:
    return Passage(marker, doc, f"{doc}#0", doc, text, 1.0 / marker)


def flat(text: str) -> str:
    return " ".join(text.replace("**", "").split())


async def pick(question: str, passages: list[Passage]) -> tuple[str, Passage]:
    found = await Extractor(BagOfWords()).extract(question, passages)
    assert found is not None
    return found.text, found.passage


def test_wrapped_lines_are_joined_and_headings_and_fragments_left_out() -> None:
    got = sentences(VACATION)
    assert "Carried-over days expire on March 31 if they are not taken." in got
    assert got[0].startswith("Every full-time employee accrues 25 days of paid vacation per")
    assert not any(s.startswith("#") or s in ("Carry-over", "Vacation and leave policy")
                   for s in got)
    assert sentences("Sick leave\n\nSources:") == []


def test_candidates_come_from_the_best_passages_only() -> None:
    found = candidates([passage(1, "a.md", VACATION), passage(2, "b.md", SECURITY)], 1, 48)
    assert {c.passage.document_id for c in found} == {"a.md"}
    assert len(candidates([passage(1, "a.md", VACATION)], 3, 2)) == 2


@pytest.mark.parametrize(("question", "expected"), [
    ("When do carried-over vacation days expire?",
     "Carried-over days expire on March 31 if they are not taken."),
    ("How many days of paid vacation does a full-time employee get per year?",
     "Every full-time employee accrues 25 days of paid vacation per calendar year"),
    ("How many unused vacation days can I carry over into next year?",
     "Up to 5 unused vacation days can be carried over into the next year."),
])
async def test_english_question_gets_the_sentence_holding_its_answer(question: str,
                                                                     expected: str) -> None:
    text, cited = await pick(question, [passage(1, "vacation.md", VACATION),
                                        passage(2, "security.md", SECURITY)])
    assert text.startswith(expected) and cited.document_id == "vacation.md"


async def test_the_answer_may_come_from_a_lower_passage_and_cites_that_one() -> None:
    extractor = Extractor(BagOfWords())
    found = await extractor.extract("How long must a password be?",
                                    [passage(1, "vacation.md", VACATION),
                                     passage(2, "security.md", SECURITY)])
    assert found is not None and found.passage.marker == 2
    assert found.text == ("Passwords must be at least 14 characters long and unique per "
                          "system.")
    assert found.answer == found.text + " [2]"


@pytest.mark.parametrize(("question", "expected"), [
    ("점심 식대는 한 달에 얼마까지 지원되나요?", "점심 식대는 월 20만 원까지 법인 카드로 지원됩니다."),
    ("본인 결혼 시 경조 휴가는 며칠인가요?",
     "본인 결혼 시에는 5일의 경조 휴가와 경조금 100만 원이 지급됩니다."),
])
async def test_korean_question_gets_a_korean_sentence(question: str, expected: str) -> None:
    text, cited = await pick(question, [passage(1, "benefits-ko.md", BENEFITS_KO),
                                        passage(2, "vacation.md", VACATION)])
    assert text == expected and cited.document_id == "benefits-ko.md"


@pytest.mark.parametrize("question", [
    "When do carried-over vacation days expire?", "How long must a password be?",
    "What do I do if my laptop is lost or stolen?", "점심 식대는 한 달에 얼마까지 지원되나요?",
    "What is the boiling point of tungsten?", "?"])
async def test_it_never_invents_the_text_is_copied_from_the_cited_passage(question: str) -> None:
    text, cited = await pick(question, [passage(1, "vacation.md", VACATION),
                                        passage(2, "security.md", SECURITY),
                                        passage(3, "benefits-ko.md", BENEFITS_KO)])
    assert flat(text) in flat(cited.text)


async def test_one_embedding_call_for_the_question_and_the_sentences() -> None:
    embedder = BagOfWords()
    await Extractor(embedder).extract("How long must a password be?",
                                      [passage(1, "security.md", SECURITY)])
    assert len(embedder.calls) == 1
    assert embedder.calls[0][0] == "How long must a password be?"
    assert embedder.calls[0][1:] == sentences(SECURITY)


async def test_passages_without_sentences_give_nothing() -> None:
    assert await Extractor(BagOfWords()).extract("q?", [passage(1, "x.md", "# Title\n")]) is None
    assert await Extractor(BagOfWords()).extract("q?", []) is None


def test_questions_asking_for_a_number() -> None:
    assert asks_for_number("How many seats does the Starter plan include?")
    assert asks_for_number("When do salary changes take effect?")
    assert asks_for_number("재택 근무는 주 몇 회까지 가능한가요?")
    assert not asks_for_number("Which class can I fly on a long flight?")
    assert numbers("It costs 1,000 euros [2] from 8:00.") == {"1000", "8:00"}


@pytest.mark.parametrize(("reply", "supported"), [
    ("1", False),
    ("The answer is:", False),
    ("How many vacation days do I get?", False),  # the question, restated
    ("You get 26 days of paid vacation [1].", False),  # a number the passages do not hold
    ("You get 25 days of paid vacation [1].", True),
    ("Unused days expire on March 31.", True),
])
async def test_a_generated_answer_is_supported_only_when_the_passages_say_it(
        reply: str, supported: bool) -> None:
    extractor = Extractor(BagOfWords())
    assert await extractor.supported(reply, "How many vacation days do I get?",
                                     [passage(1, "vacation.md", VACATION)]) is supported


class _Grounding:
    def __init__(self, score: float | None) -> None:
        self.value = score

    async def score(self, answer: str, passages: Sequence[Passage]) -> float | None:
        return self.value


@pytest.mark.parametrize(("score", "supported"), [(0.4, False), (0.5, True), (None, False)])
async def test_with_a_grounding_check_enough_sentences_must_be_supported(
        score: float | None, supported: bool) -> None:
    extractor = Extractor(BagOfWords(), _Grounding(score), min_groundedness=0.5)  # type: ignore[arg-type]
    assert await extractor.supported("You get 25 days of paid vacation.", "How many days?",
                                     [passage(1, "vacation.md", VACATION)]) is supported


def test_cosine_of_the_stand_in_is_sane() -> None:
    a, b = BagOfWords.vector("paid vacation"), BagOfWords.vector("paid vacation days")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    assert dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(x * x for x in b))) > 0.7


FAQ = """Product FAQ: the Orbit analytics platform

Which regions is Orbit available in?
Orbit runs in two regions: Frankfurt (eu-central) and Virginia (us-east).

Opening hours and access

The office is open from 7:00 to 20:00.
"""

PROBATION = """Probation

New employees have a probation period of six months, with a check-in meeting after three
months. The notice period during probation is two weeks.
"""


def test_questions_and_headings_of_plain_text_are_not_answers() -> None:
    assert sentences(FAQ) == [
        "Orbit runs in two regions: Frankfurt (eu-central) and Virginia (us-east).",
        "The office is open from 7:00 to 20:00."]


async def test_a_faq_question_line_is_never_the_answer() -> None:
    text, _ = await pick("Which regions is Orbit available in?", [passage(1, "faq.txt", FAQ)])
    assert text.startswith("Orbit runs in two regions")


async def test_the_question_phrase_held_together_wins_over_scattered_terms() -> None:
    assert phrase_overlap("How long is the probation period?",
                          "New employees have a probation period of six months.") == 0.5
    assert phrase_overlap("How long is the probation period?",
                          "The notice period during probation is two weeks.") == 0.0
    text, _ = await pick("How long is the probation period?",
                         [passage(1, "reviews.md", PROBATION)])
    assert text.startswith("New employees have a probation period of six months")


@pytest.mark.parametrize(("reply", "agreeing"), [
    ("Parental leave is 20 weeks [1].", True),
    ("It is 20 weeks at full pay.", True),
    ("The Orbit analytics platform is available in 20 regions.", False),  # grounded elsewhere
    ("Parental leave is 12 weeks.", False),
    ("1", False),
])
def test_a_generated_answer_must_agree_with_the_extracted_sentence(reply: str,
                                                                   agreeing: bool) -> None:
    assert agrees(reply, "How long is parental leave?",
                  "Parental leave is 20 weeks at full pay for every parent.") is agreeing


async def test_support_with_the_extract_rejects_an_answer_grounded_in_another_passage() -> None:
    extractor = Extractor(BagOfWords())
    context = [passage(1, "vacation.md", VACATION), passage(2, "security.md", SECURITY)]
    question = "When do carried-over vacation days expire?"
    found = await extractor.extract(question, context)
    assert found is not None
    reply = "Passwords must be at least 14 characters long [2]."
    assert await extractor.supported(reply, question, context)  # grounded, but elsewhere
    assert not await extractor.supported(reply, question, context, found)
    assert await extractor.supported("They expire on March 31 [1].", question, context, found)
