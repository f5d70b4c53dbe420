"""The pipeline answers "the documents do not cover this" when retrieval is weak or the answer
is unsupported, and fits its context into the token budget."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence

import pytest

from llmops_inference.api.completion import completed_event
from llmops_inference.api.grpc import to_response
from llmops_inference.domain.cache import AnswerCache
from llmops_inference.domain.context import ContextBudget
from llmops_inference.domain.model import (
    Answer,
    Embeddings,
    Generation,
    ModelRef,
    Passage,
    Quality,
    Question,
    RenderedPrompt,
    SafetyResult,
    Verdict,
)
from llmops_inference.domain.pipeline import AnswerService, Limits
from llmops_inference.domain.refusal import (
    MESSAGES,
    UNSUPPORTED_ANSWER,
    WEAK_RETRIEVAL,
    AnswerPolicies,
    AnswerPolicy,
    GroundingCheck,
)
from llmops_kit.errors import NotFound

pytestmark = pytest.mark.unit

VACATION = ("Every employee accrues 25 days of paid vacation per year. Up to 5 unused days can "
            "be carried over. Carried-over days expire on March 31.")


class Retriever:
    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages

    async def embed(self, question: str) -> list[float]:
        return [1.0, 0.0]

    async def search(self, question: str, vector: Sequence[float], top_k: int) -> list[Passage]:
        return self.passages[:top_k]


class Prompts:
    def __init__(self) -> None:
        self.rendered: list[list[Passage]] = []

    async def render(self, name: str, label: str, question: str, passages: Sequence[Passage]
                     ) -> RenderedPrompt:
        self.rendered.append(list(passages))
        return RenderedPrompt(name, 1, "", "\n".join(f"[{p.marker}] {p.text}" for p in passages))


class Models:
    async def resolve(self, alias: str) -> ModelRef:
        if alias == "nope":
            raise NotFound("ALIAS_NOT_FOUND", f"no alias {alias!r}")
        return ModelRef("smollm2", 1)

    def invalidate(self, model_name: str | None = None, tenant: str | None = None) -> None:
        pass


class Guard:
    async def check(self, text: str, direction: str) -> SafetyResult:
        return SafetyResult(Verdict.ALLOW, text)

    async def redact(self, text: str) -> str:
        return text


class Generator:
    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls = 0

    async def prepare(self, model: ModelRef) -> None:
        pass

    async def generate(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                       temperature: float | None, seed: int | None) -> Generation:
        self.calls += 1
        return Generation(self.reply, 40, 6, "stop")

    async def stream(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                     temperature: float | None, seed: int | None
                     ) -> AsyncIterator[str | Generation]:
        self.calls += 1
        yield self.reply
        yield Generation(self.reply, 40, 6, "stop")


class Sink:
    def __init__(self) -> None:
        self.answers: list[Answer] = []

    def submit(self, question: Question, answer: Answer, streamed: bool) -> None:
        self.answers.append(answer)


class Embedder:
    """Sentences about vacation point at the vacation passage; others away from it."""

    async def embed_texts(self, texts: Sequence[str]) -> Embeddings:
        return Embeddings([[1.0, 0.0] if "vacation" in t.lower() or "25" in t else [0.0, 1.0]
                           for t in texts], "fake")

    async def model_name(self) -> str:
        return "fake"


def passage(n: int, doc: str, text: str, similarity: float | None, index: int = 0) -> Passage:
    return Passage(n, doc, f"{doc}#{index}", doc, text, 1.0 / n, chunk_index=index,
                   similarity=similarity)


def service(passages: list[Passage], reply: str = "You get 25 days of vacation [1].",
            policy: AnswerPolicy | None = None, budget: int = 1200,
            grounding: bool = False, focus_tokens: int = 0) -> tuple[AnswerService, Generator, Prompts, Sink]:
    gen, prompts, sink = Generator(reply), Prompts(), Sink()
    svc = AnswerService(Retriever(passages), prompts, Models(), Guard(), gen, sink,
                        AnswerCache(10, 60), Limits(), ContextBudget(budget, focus_tokens),
                        AnswerPolicies(policy or AnswerPolicy(0.3), {"strict": AnswerPolicy(0.9)}),
                        GroundingCheck(Embedder(), 0.5) if grounding else None)
    return svc, gen, prompts, sink


def ask(text: str = "How many vacation days do I get?", tenant: str = "acme") -> Question:
    return Question(tenant, text, "production", "rag-answer", "production", True, 4, 64)


async def test_weak_retrieval_is_refused_without_generating() -> None:
    svc, gen, prompts, sink = service([passage(1, "faq.txt", "Orbit runs in Frankfurt.", 0.12),
                                       passage(2, "hr.md", VACATION, 0.21)])
    answer = await svc.answer(ask("What is the boiling point of tungsten?"))
    assert answer.text == MESSAGES["en"] and answer.refusal == WEAK_RETRIEVAL
    assert answer.passages == [] and not answer.blocked and answer.error == ""
    assert answer.retrieval_score == pytest.approx(0.21)
    # The prompt is still resolved (an unknown one is NOT_FOUND), with no passages in it.
    assert gen.calls == 0 and prompts.rendered == [[]]
    assert sink.answers[-1].refusal == WEAK_RETRIEVAL
    resp = to_response(answer)
    assert resp.refusal == WEAK_RETRIEVAL and resp.retrieval_score == pytest.approx(0.21)
    assert resp.answer == MESSAGES["en"] and list(resp.citations) == []
    event = completed_event(ask(), sink.answers[-1], False, "q", answer.text, Quality())
    assert event.refusal == WEAK_RETRIEVAL and event.error == ""


async def test_an_unknown_alias_is_not_found_even_when_retrieval_is_weak() -> None:
    svc, gen, _, _ = service([passage(1, "faq.txt", "Orbit runs in Frankfurt.", 0.05)])
    question = dataclasses.replace(ask("q"), model_alias="nope")
    with pytest.raises(NotFound) as err:
        await svc.answer(question)
    assert err.value.reason == "ALIAS_NOT_FOUND" and gen.calls == 0


async def test_korean_question_gets_the_korean_message() -> None:
    svc, gen, _, _ = service([passage(1, "ko.md", "재택 근무는 주 2회까지 가능합니다.", 0.05)])
    answer = await svc.answer(ask("한국의 수도는 어디인가요?"))
    assert answer.text == MESSAGES["ko"] and answer.refusal == WEAK_RETRIEVAL and gen.calls == 0


async def test_strong_retrieval_is_answered_and_the_threshold_is_per_tenant() -> None:
    svc, gen, _, _ = service([passage(1, "hr.md", VACATION, 0.55)])
    answer = await svc.answer(ask())
    assert answer.refusal == "" and answer.text == "You get 25 days of vacation [1]."
    assert answer.retrieval_score == pytest.approx(0.55) and gen.calls == 1
    assert to_response(answer).refusal == ""
    strict = await svc.answer(ask(tenant="strict"))
    assert strict.refusal == WEAK_RETRIEVAL and gen.calls == 1


async def test_a_stream_refusal_streams_the_message() -> None:
    svc, gen, _, _ = service([passage(1, "faq.txt", "Orbit runs in Frankfurt.", 0.1)])
    items = [item async for item in svc.stream(ask("Who won the world cup in 1970?"))]
    assert items[0] == MESSAGES["en"]
    final = items[-1]
    assert isinstance(final, Answer) and final.refusal == WEAK_RETRIEVAL
    assert final.text == MESSAGES["en"] and len(items) == 2 and gen.calls == 0


async def test_unsupported_answer_is_replaced_by_the_message() -> None:
    policy = AnswerPolicy(min_retrieval_score=0.3, min_groundedness=0.5)
    svc, gen, _, _ = service([passage(1, "hr.md", VACATION, 0.6)],
                                reply="The moon is far away. Mars is red.", policy=policy,
                                grounding=True)
    answer = await svc.answer(ask())
    assert gen.calls == 1
    assert answer.refusal == UNSUPPORTED_ANSWER and answer.text == MESSAGES["en"]
    assert answer.passages == [] and answer.completion_tokens == 6
    assert "grounding" in answer.stages_ms
    again = await svc.answer(ask())  # a refusal is not cached
    assert not again.cached and gen.calls == 2
    supported, _, _, _ = service([passage(1, "hr.md", VACATION, 0.6)], policy=policy,
                                 grounding=True)
    ok = await supported.answer(ask())
    assert ok.refusal == "" and ok.text.startswith("You get 25 days")


async def test_the_prompt_gets_merged_passages_within_the_budget() -> None:
    first, second = VACATION[:80], VACATION[50:]
    retrieved = [passage(1, "hr.md", second, 0.6, index=1),
                 passage(2, "faq.txt", "Orbit runs in two regions. " * 40, 0.4),
                 passage(3, "hr.md", first, 0.5, index=0)]
    svc, _, prompts, sink = service(retrieved, budget=80)
    answer = await svc.answer(ask())
    rendered = prompts.rendered[0]
    assert [p.document_id for p in rendered] == ["hr.md", "faq.txt"]
    assert rendered[0].text == VACATION and rendered[0].marker == 1
    assert rendered[0].chunk_ids == ("hr.md#0", "hr.md#1")
    assert rendered[1].text.endswith("regions.") and rendered[1].marker == 2
    assert len(rendered[1].text) < len(retrieved[1].text)
    event = completed_event(ask(), sink.answers[-1], False, "q", answer.text, Quality())
    # One id per source (a merged passage: its better-ranked chunk's), as in the response.
    assert list(event.retrieved_chunk_ids) == ["hr.md#1", "faq.txt#0"]


async def test_the_prompt_is_focused_but_the_answer_reads_the_whole_passages() -> None:
    retrieved = [passage(1, "vacation.md", VACATION + "\n\nSick leave is separate and not capped.",
                         0.8),
                 passage(2, "security.md", "Laptops lock after 5 minutes.", 0.5, index=3)]
    svc, _, prompts, sink = service(retrieved, reply="Up to 5 unused days [1].", focus_tokens=20)
    answer = await svc.answer(ask("How many unused days can be carried over?"))
    shown = prompts.rendered[-1]
    assert [p.marker for p in shown] == [1]  # the laptop passage says nothing to the question
    assert "Up to 5 unused days can be carried over." in shown[0].text
    assert "Sick leave" not in shown[0].text
    assert [p.document_id for p in answer.passages] == ["vacation.md"]  # the citation
    assert "Sick leave" in sink.answers[-1].retrieved[0].text  # the whole passage is kept
