"""The tenant's answer policy chooses generative, extractive or hybrid answers."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
from collections.abc import AsyncIterator, Sequence

import pytest
from pydantic import ValidationError

from llmops_inference.api.grpc import to_response
from llmops_inference.domain.cache import AnswerCache
from llmops_inference.domain.context import ContextBudget
from llmops_inference.domain.extractive import Extractor
from llmops_inference.domain.model import (
    Answer,
    Embeddings,
    Generation,
    ModelRef,
    Passage,
    Question,
    RenderedPrompt,
    SafetyResult,
    Verdict,
)
from llmops_inference.domain.pipeline import AnswerService, Limits
from llmops_inference.domain.refusal import (
    UNSUPPORTED_ANSWER,
    WEAK_RETRIEVAL,
    AnswerPolicies,
    AnswerPolicy,
    GroundingCheck,
)
from llmops_inference.settings import AnswerPoliciesSettings

pytestmark = pytest.mark.unit

VACATION = """## Carry-over

Up to 5 unused vacation days can be carried over into the next year. Carried-over days expire
on March 31 if they are not taken.
"""
EXPIRES = "Carried-over days expire on March 31 if they are not taken. [1]"
QUESTION = "When do carried-over days expire?"


_TOKEN = re.compile(r"[^\W_]+")


class BagOfWords:
    """Hashed word counts: texts that share words are close."""

    async def embed_texts(self, texts: Sequence[str]) -> Embeddings:
        vectors = []
        for text in texts:
            v = [0.0] * 64
            for w in _TOKEN.findall(text.lower()):
                v[int(hashlib.sha1(w.encode()).hexdigest(), 16) % 64] += 1.0
            vectors.append(v)
        return Embeddings(vectors, "bag-of-words")

    async def model_name(self) -> str:
        return "bag-of-words"


class Retriever:
    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages

    async def embed(self, question: str) -> list[float]:
        return [1.0, 0.0]

    async def search(self, question: str, vector: Sequence[float], top_k: int) -> list[Passage]:
        return self.passages[:top_k]


class Prompts:
    async def render(self, name: str, label: str, question: str, passages: Sequence[Passage]
                     ) -> RenderedPrompt:
        return RenderedPrompt(name, 1, "", "\n".join(f"[{p.marker}] {p.text}" for p in passages))


class Models:
    async def resolve(self, alias: str) -> ModelRef:
        return ModelRef("smollm2", 1)

    def invalidate(self, model_name: str | None = None, tenant: str | None = None) -> None:
        pass


class Generator:
    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls = 0
        self.streamed = 0
        self.delay = 0.0

    async def prepare(self, model: ModelRef) -> None:
        pass

    async def generate(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                       temperature: float | None, seed: int | None) -> Generation:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return Generation(self.reply, 40, 6, "stop")

    async def stream(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                     temperature: float | None, seed: int | None
                     ) -> AsyncIterator[str | Generation]:
        self.calls += 1
        self.streamed += 1
        for word in re.findall(r"\S+\s*", self.reply):  # the model's tokens, as they come
            yield word
        yield Generation(self.reply, 40, 6, "stop")


class Sink:
    def submit(self, question: Question, answer: Answer, streamed: bool) -> None:
        pass


def passage(n: int, doc: str, text: str, similarity: float) -> Passage:
    return Passage(n, doc, f"{doc}#0", doc, text, 1.0 / n, similarity=similarity)


def ask(text: str, tenant: str = "acme") -> Question:
    return Question(tenant, text, "production", "rag-answer", "production", True, 4, 64)


class RecordingGuard:
    def __init__(self) -> None:
        self.outputs: list[str] = []

    async def redact(self, text: str) -> str:
        return text

    async def check(self, text: str, direction: str) -> SafetyResult:
        if direction == "output":
            self.outputs.append(text)
        return SafetyResult(Verdict.ALLOW, text)


def service(mode: str, reply: str = "1", extractor: bool = True, similarity: float = 0.6
            ) -> tuple[AnswerService, Generator, RecordingGuard]:
    gen, guard = Generator(reply), RecordingGuard()
    passages = [passage(1, "vacation.md", VACATION, similarity),
                passage(2, "security.md", "Passwords must be at least 14 characters long.",
                        similarity)]
    # The weak-answer check is off: the bag-of-words stand-in's cosines are not the model's.
    policies = AnswerPolicies(AnswerPolicy(0.3, answer_mode=mode, min_sentence_similarity=None),
                              {"gen": AnswerPolicy(0.3, answer_mode="generative")})
    svc = AnswerService(Retriever(passages), Prompts(), Models(), guard, gen, Sink(),
                        AnswerCache(10, 60), Limits(), ContextBudget(1200), policies, None,
                        Extractor(BagOfWords()) if extractor else None)
    return svc, gen, guard


async def test_extractive_answers_with_the_cited_sentence_without_generating() -> None:
    svc, gen, guard = service("extractive")
    answer = await svc.answer(ask(QUESTION))
    assert gen.calls == 0
    assert answer.text == EXPIRES and answer.finish_reason == "extractive"
    assert [p.document_id for p in answer.passages] == ["vacation.md"]
    assert guard.outputs == [EXPIRES]  # the output check still sees it
    assert "extraction" in answer.stages_ms and "generation" not in answer.stages_ms
    resp = to_response(answer)
    assert resp.answer == EXPIRES and [c.document_id for c in resp.citations] == ["vacation.md"]


async def test_hybrid_replaces_an_unsupported_answer_with_the_extracted_one() -> None:
    svc, gen, _ = service("hybrid", reply="1")
    answer = await svc.answer(ask(QUESTION))
    assert gen.calls == 1
    assert answer.text == EXPIRES and answer.finish_reason == "extractive"
    assert answer.completion_tokens == 6 and answer.refusal == ""


async def test_hybrid_replaces_an_answer_grounded_in_another_passage() -> None:
    svc, gen, _ = service("hybrid", reply="Passwords must be at least 14 characters long [2].")
    answer = await svc.answer(ask(QUESTION))
    assert gen.calls == 1 and answer.text == EXPIRES
    assert [p.document_id for p in answer.passages] == ["vacation.md"]


async def test_hybrid_keeps_a_supported_generated_answer() -> None:
    svc, gen, _ = service("hybrid", reply="They expire on March 31 [1].")
    answer = await svc.answer(ask(QUESTION))
    assert gen.calls == 1 and answer.text == "They expire on March 31 [1]."
    assert answer.finish_reason == "stop"


async def test_generative_keeps_the_model_answer_and_the_mode_is_per_tenant() -> None:
    svc, gen, _ = service("hybrid", reply="1")
    answer = await svc.answer(ask(QUESTION, tenant="gen"))
    assert answer.text == "1" and gen.calls == 1


async def test_without_an_extractor_every_answer_is_generated() -> None:
    svc, gen, _ = service("extractive", reply="1", extractor=False)
    answer = await svc.answer(ask(QUESTION))
    assert answer.text == "1" and gen.calls == 1


async def test_weak_retrieval_is_still_refused_in_extractive_mode() -> None:
    svc, gen, _ = service("extractive", similarity=0.1)
    answer = await svc.answer(ask(QUESTION))
    assert answer.refusal == WEAK_RETRIEVAL and gen.calls == 0 and answer.passages == []


async def test_an_extractive_stream_yields_the_sentence_then_the_answer() -> None:
    svc, gen, _ = service("extractive")
    items = [item async for item in svc.stream(ask(QUESTION))]
    assert items[0] == EXPIRES and len(items) == 2 and gen.calls == 0
    final = items[-1]
    assert isinstance(final, Answer) and final.text == EXPIRES
    assert [p.document_id for p in final.passages] == ["vacation.md"]


STOLEN = "My laptop was stolen, who do I tell?"
LAPTOPS = ("Report a lost or stolen laptop to the security team within one hour at "
           "security@example.com so that the device can be wiped remotely.")


def texts(items: Sequence[str | Answer]) -> str:
    return "".join(i for i in items if isinstance(i, str))


async def test_a_hybrid_stream_never_shows_the_replaced_model_text() -> None:
    # The reported case: the model's "You can't tell me." was streamed, then replaced.
    svc, gen, _ = service("hybrid", reply="You can't tell me.")
    svc.retriever = Retriever([passage(1, "security.md", LAPTOPS, 0.6)])
    items = [item async for item in svc.stream(ask(STOLEN))]
    final = items[-1]
    assert isinstance(final, Answer) and final.finish_reason == "extractive"
    assert items[:-1] == [LAPTOPS + " [1]"] and final.text == LAPTOPS + " [1]"
    assert "can't tell" not in texts(items)
    assert gen.calls == 1 and gen.streamed == 0  # held: generated whole, then decided
    unary = await svc.answer(dataclasses.replace(ask(STOLEN), use_cache=False))
    assert unary.text == final.text  # streamed or not, the same answer


async def test_a_hybrid_stream_shows_a_kept_model_answer_after_the_decision() -> None:
    svc, gen, _ = service("hybrid", reply="They expire on March 31 [1].")
    gen.delay = 0.05
    items = [item async for item in svc.stream(ask(QUESTION))]
    final = items[-1]
    assert items[:-1] == ["They expire on March 31 [1]."]
    assert isinstance(final, Answer) and final.text == "They expire on March 31 [1]."
    assert final.finish_reason == "stop" and final.completion_tokens == 6
    assert [p.document_id for p in final.passages] == ["vacation.md"]
    # Time to first token is the time to the released text: generation and the decision.
    assert final.time_to_first_token_ms >= 50
    assert final.time_to_first_token_ms >= final.stages_ms["generation"]


async def test_a_generative_stream_is_still_shown_as_it_is_generated() -> None:
    svc, gen, _ = service("hybrid", reply="1")
    items = [item async for item in svc.stream(ask(QUESTION, tenant="gen"))]
    assert items[0] == "1" and gen.streamed == 1 and gen.calls == 1


async def test_a_stream_under_min_groundedness_shows_only_the_refusal() -> None:
    svc, gen, _ = service("generative", reply="Nobody knows.")
    svc.policies = AnswerPolicies(AnswerPolicy(0.3, min_groundedness=0.9))
    svc.grounding = GroundingCheck(BagOfWords(), 0.5)
    items = [item async for item in svc.stream(ask(QUESTION))]
    final = items[-1]
    assert isinstance(final, Answer) and final.refusal == UNSUPPORTED_ANSWER
    assert items[:-1] == [final.text] and "Nobody" not in texts(items)
    assert gen.streamed == 0


def test_the_policy_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="answer_mode must be one of"):
        AnswerPolicy(answer_mode="creative")


def test_settings_default_and_per_tenant_answer_mode() -> None:
    settings = AnswerPoliciesSettings.model_validate(
        {"tenants": {"acme": {"answer_mode": "extractive"}, "lab": {"min_groundedness": 0.5}}})
    policies = settings.policies()
    assert policies.default.answer_mode == "hybrid"
    assert policies.for_tenant("acme").answer_mode == "extractive"
    assert policies.for_tenant("lab").answer_mode == "hybrid"
    with pytest.raises(ValidationError):
        AnswerPoliciesSettings.model_validate({"default": {"answer_mode": "creative"}})
    with pytest.raises(ValidationError):
        AnswerPoliciesSettings.model_validate(
            {"tenants": {"acme": {"answer_mode": "creative"}}}).policies()


async def test_a_question_whose_closest_sentence_is_far_is_refused() -> None:
    svc, gen, _ = service("extractive")
    svc.policies = AnswerPolicies(AnswerPolicy(0.3, answer_mode="extractive",
                                               min_sentence_similarity=0.99))
    refused = await svc.answer(dataclasses.replace(ask(QUESTION), use_cache=False))
    assert refused.refusal == WEAK_RETRIEVAL and refused.passages == [] and gen.calls == 0
    assert refused.text.startswith("The documents I can search do not cover")
    svc.policies = AnswerPolicies(AnswerPolicy(0.3, answer_mode="extractive",
                                               min_sentence_similarity=0.01))
    answered = await svc.answer(dataclasses.replace(ask(QUESTION), use_cache=False))
    assert answered.refusal == "" and answered.text == EXPIRES
