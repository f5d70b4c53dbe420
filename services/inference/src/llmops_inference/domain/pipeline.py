"""The answer pipeline: retrieve -> render -> check input -> generate -> check output -> cite."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field

from llmops_inference.domain.cache import AnswerCache, CacheKey
from llmops_inference.domain.citations import cited
from llmops_inference.domain.context import ContextBudget, build_context
from llmops_inference.domain.errors import InvalidQuestion, failure_code
from llmops_inference.domain.extractive import Extract, Extractor
from llmops_inference.domain.focus import focus
from llmops_inference.domain.limits import Limits, Stopwatch
from llmops_inference.domain.model import (
    EXTRACTIVE,
    GENERATIVE,
    HYBRID,
    Answer,
    Generation,
    GuardedPassage,
    ModelRef,
    Passage,
    Question,
    RenderedPrompt,
    Verdict,
)
from llmops_inference.domain.refusal import (
    UNSUPPORTED_ANSWER,
    WEAK_RETRIEVAL,
    AnswerPolicies,
    AnswerPolicy,
    GroundingCheck,
    best_similarity,
    message,
    not_covered,
    weak_answer,
    weak_retrieval,
)
from llmops_inference.domain.streaming import OutputWindow, Segmenter
from llmops_inference.ports import (
    CompletionSink,
    Generator,
    Guard,
    ModelResolver,
    PromptRenderer,
    Retriever,
)
from llmops_kit.context import deadline_var

log = logging.getLogger(__name__)

REFUSAL_INPUT = "I can't help with that request."
REFUSAL_OUTPUT = "I can't share that answer."
_SEVERITY = {Verdict.ALLOW: 0, Verdict.REDACT: 1, Verdict.BLOCK: 2}


async def _aclose(stream: object) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


@dataclass(frozen=True)
class _Ready:
    """What generation needs, once the input passed its check."""

    prompt: RenderedPrompt
    passages: list[Passage]
    input_safety: Verdict
    model: ModelRef
    guarded: list[GuardedPassage]
    # What retrieval embedded and searched, and its vector (empty without retrieval).
    searched: str = ""
    vector: list[float] = field(default_factory=list)
    # Everything retrieval returned and kept (passages: what the prompt holds of it).
    retrieved: list[Passage] = field(default_factory=list)

    def answered(self, gen: Generation | None, text: str, verdict: Verdict) -> Answer:
        """The Answer for generated `text` (already redacted if needed) and its output verdict."""
        blocked = verdict is Verdict.BLOCK
        return Answer(
            text=REFUSAL_OUTPUT if blocked else text,
            passages=[] if blocked or gen is None else cited(gen.text, self.passages),
            model=self.model,
            prompt=self.prompt,
            input_safety=self.input_safety,
            output_safety=verdict,
            blocked=blocked,
            prompt_tokens=gen.prompt_tokens if gen else 0,
            completion_tokens=gen.completion_tokens if gen else 0,
            finish_reason=gen.finish_reason if gen else "",
            retrieved=self.passages,
            guarded=self.guarded,
            served_version=gen.model_version if gen else "",
            searched_text=self.searched,
            query_vector=self.vector,
            retrieval_score=best_similarity(self.retrieved),
        )

    def refused(self, question: str, reason: str, gen: Generation | None = None) -> Answer:
        """"The documents do not cover this", in the question's language (domain/refusal.py)."""
        answer = self.answered(gen, message(question), Verdict.ALLOW)
        answer.passages = []
        answer.refusal = reason
        return answer


@dataclass
class _Attempt:
    """How far a request got, for the event of one that fails."""

    input_safety: Verdict | None = None
    ready: _Ready | None = None
    # The version resolved for it: a failure to load it (prepare) is still that version's.
    model: ModelRef | None = None


def _deadline_passed() -> bool:
    deadline = deadline_var.get()
    return deadline is not None and time.monotonic() >= deadline


class AnswerService:
    def __init__(
        self,
        retriever: Retriever,
        prompts: PromptRenderer,
        models: ModelResolver,
        guard: Guard,
        generator: Generator,
        sink: CompletionSink,
        cache: AnswerCache,
        limits: Limits,
        context: ContextBudget | None = None,
        policies: AnswerPolicies | None = None,
        grounding: GroundingCheck | None = None,
        extractor: Extractor | None = None,
    ) -> None:
        self.retriever = retriever
        self.prompts = prompts
        self.models = models
        self.guard = guard
        self.generator = generator
        self.sink = sink
        self.cache = cache
        self.limits = limits
        self.context = context or ContextBudget()
        # Without policies nothing is refused (the settings give the measured defaults).
        self.policies = policies or AnswerPolicies(AnswerPolicy(None, None, None))
        # Scores generated answers for the tenant policy's min_groundedness (None: never).
        self.grounding = grounding
        # Selects answering sentences for the extractive and hybrid answer modes (None: every
        # answer is generated, whatever the policy says).
        self.extractor = extractor

    def validate(self, q: Question) -> None:
        if not q.text.strip():
            raise InvalidQuestion("EMPTY_QUESTION", "question is empty")
        if len(q.text) > self.limits.max_question_chars:
            raise InvalidQuestion("QUESTION_TOO_LONG",
                                  f"question exceeds {self.limits.max_question_chars} characters")
        if q.top_k > self.limits.max_top_k:
            raise InvalidQuestion("TOP_K_TOO_LARGE", f"top_k must be <= {self.limits.max_top_k}")
        if q.max_new_tokens > self.limits.max_new_tokens:
            raise InvalidQuestion("MAX_NEW_TOKENS_TOO_LARGE",
                                  f"max_new_tokens must be <= {self.limits.max_new_tokens}")
        if q.temperature is not None and not 0.0 <= q.temperature <= 2.0:
            raise InvalidQuestion("BAD_TEMPERATURE", "temperature must be within [0, 2]")

    async def _prepare(self, q: Question, sw: Stopwatch, attempt: _Attempt) -> Answer | _Ready:
        """Everything before generation; a finished Answer when the input is blocked."""
        with sw.stage("input_safety"):
            verdict = await self.guard.check(q.text, "input")
        attempt.input_safety = verdict.verdict
        if verdict.verdict is Verdict.BLOCK:
            return Answer(REFUSAL_INPUT, [], None, None, Verdict.BLOCK, Verdict.ALLOW,
                          blocked=True)
        # A question with PII is answered from its redacted form: PII never reaches the model.
        text = verdict.redacted_text if verdict.verdict is Verdict.REDACT else q.text
        retrieved: list[Passage] = []
        passages: list[Passage] = []
        guarded: list[GuardedPassage] = []
        vector: list[float] = []
        weak = False
        if q.rag:
            with sw.stage("embedding"):
                vector = await self.retriever.embed(text)
            with sw.stage("retrieval"):
                retrieved = await self.retriever.search(text, vector, q.top_k)
            with sw.stage("context_safety"):
                retrieved, guarded = await self._guard_passages(retrieved)
            weak = weak_retrieval(self.policies.for_tenant(q.tenant), retrieved, text)
            passages = [] if weak else build_context(retrieved, self.context)
        # The prompt and the model are resolved even for a refusal: an unknown prompt or alias
        # is the caller's error (NOT_FOUND), whatever the documents cover.
        with sw.stage("prompt"):
            shown = focus(text, passages, self.context.focus_tokens)
            prompt = await self.prompts.render(q.prompt_name, q.prompt_label, text, shown)
        with sw.stage("model"):
            model = await (self.models.resolve_version(q.model_version) if q.model_version
                           else self.models.resolve(q.model_alias))
            attempt.model = model
            if weak:
                return not_covered(q.text, WEAK_RETRIEVAL, retrieved, guarded, verdict.verdict,
                                   text, vector)
            await self.generator.prepare(model)
        attempt.ready = _Ready(prompt, passages, verdict.verdict, model, guarded,
                               text if q.rag else "", list(vector), retrieved)
        return attempt.ready

    async def _guard_passages(self, passages: list[Passage]
                              ) -> tuple[list[Passage], list[GuardedPassage]]:
        """Indirect prompt injection: every retrieved passage is checked (direction "context")
        before it enters the prompt. One that tries to instruct the model is dropped or
        neutralised, as the tenant's safety policy says; the rest are renumbered [1..n]."""
        results = await asyncio.gather(*(self.guard.check(p.text, "context") for p in passages))
        kept: list[Passage] = []
        guarded: list[GuardedPassage] = []
        for p, r in zip(passages, results, strict=True):
            if r.injection_action is not None:
                guarded.append(GuardedPassage(p.document_id, p.chunk_id, r.injection_action,
                                              r.injection_score))
            if r.verdict is Verdict.BLOCK:
                continue
            text = r.redacted_text if r.verdict is Verdict.REDACT else p.text
            kept.append(dataclasses.replace(p, marker=len(kept) + 1, text=text))
        if guarded:
            log.warning("retrieved passages tried to instruct the model: %s", ", ".join(
                f"{g.chunk_id} {g.action.value}" for g in guarded))
        return kept, guarded

    @contextmanager
    def _failures(self, q: Question, sw: Stopwatch, streamed: bool) -> Iterator[_Attempt]:
        """A request that fails after validation still gets its InferenceCompleted, with the
        error's code (and a cancelled one whose deadline passed, DEADLINE_EXCEEDED)."""
        attempt = _Attempt()
        try:
            yield attempt
        except asyncio.CancelledError:
            if _deadline_passed():
                self._failed(q, sw, streamed, attempt, "DEADLINE_EXCEEDED")
            raise
        except Exception as exc:
            self._failed(q, sw, streamed, attempt, failure_code(exc))
            raise

    def _failed(self, q: Question, sw: Stopwatch, streamed: bool, attempt: _Attempt,
                code: str) -> None:
        ready = attempt.ready
        answer = (ready.answered(None, "", Verdict.ALLOW) if ready
                  else Answer("", [], attempt.model, None,
                              attempt.input_safety or Verdict.ALLOW, Verdict.ALLOW,
                              blocked=False))
        answer.error = code
        answer.checked = ("input",) if attempt.input_safety is not None else ()
        self._finish(q, answer, sw, streamed)

    async def answer(self, q: Question) -> Answer:
        self.validate(q)
        sw = Stopwatch()
        with self._failures(q, sw, streamed=False) as attempt:
            return await self._answer(q, sw, attempt)
        raise AssertionError("not reached")  # mypy: the with block returns or raises

    def _mode(self, q: Question, ready: _Ready) -> str:
        if self.extractor is None or not ready.passages:
            return GENERATIVE
        return self.policies.for_tenant(q.tenant).answer_mode

    async def _extract(self, ready: _Ready, sw: Stopwatch) -> Extract | None:
        assert self.extractor is not None
        with sw.stage("extraction"):
            return await self.extractor.extract(ready.searched, ready.passages)

    async def _extracted(self, q: Question, ready: _Ready, sw: Stopwatch,
                         gen: Generation | None = None, found: Extract | None = None
                         ) -> Answer | None:
        """The answer copied from the passages (domain/extractive.py), through the output
        check like a generated one; None when the passages hold no sentence."""
        if found is None:
            found = await self._extract(ready, sw)
        if found is None:
            return None
        if weak_answer(self.policies.for_tenant(q.tenant), found.similarity):
            return ready.refused(q.text, WEAK_RETRIEVAL, gen)
        with sw.stage("output_safety"):
            out = await self.guard.check(found.answer, "output")
        text = out.redacted_text if out.verdict is Verdict.REDACT else found.answer
        made = Generation(found.answer, gen.prompt_tokens if gen else 0,
                          gen.completion_tokens if gen else 0, EXTRACTIVE,
                          gen.model_version if gen else "")
        return ready.answered(made, text, out.verdict)

    async def _answer(self, q: Question, sw: Stopwatch, attempt: _Attempt) -> Answer:
        ready = await self._prepare(q, sw, attempt)
        if isinstance(ready, Answer):
            return self._finish(q, ready, sw, streamed=False)
        mode = self._mode(q, ready)
        key = CacheKey(q.tenant, ready.model.label, ready.prompt.label, q.text, q.rag, q.top_k,
                       q.max_new_tokens, tuple(p.chunk_id for p in ready.passages))
        hit = self.cache.get(key) if q.use_cache and q.temperature is None else None
        if hit is not None:
            # This request's own retrieval (the cached answer's may differ in its vector).
            return self._finish(q, dataclasses.replace(
                hit, cached=True, searched_text=ready.searched, query_vector=ready.vector),
                sw, False)
        extracted = await self._extracted(q, ready, sw) if mode == EXTRACTIVE else None
        if extracted is not None:
            answer = extracted
        else:
            answer = await self._generated(q, ready, sw, mode)
        answer.time_to_first_token_ms = sw.stages.get("generation", sw.stages.get("extraction",
                                                                                   0.0))
        if not answer.blocked and not answer.refusal and q.temperature is None:
            self.cache.put(key, answer)
        return self._finish(q, answer, sw, streamed=False)

    async def _generated(self, q: Question, ready: _Ready, sw: Stopwatch, mode: str) -> Answer:
        """The model's answer; in hybrid mode replaced by the extracted one when the passages
        do not support it; refused as unsupported where the policy's min_groundedness says."""
        with sw.stage("generation"):
            gen = await self.generator.generate(ready.prompt, ready.model, q.max_new_tokens,
                                                q.temperature, q.seed)
        with sw.stage("output_safety"):
            out = await self.guard.check(gen.text, "output")
        text = out.redacted_text if out.verdict is Verdict.REDACT else gen.text
        answer = ready.answered(gen, text, out.verdict)
        if answer.blocked or not ready.passages:
            return answer
        if mode == HYBRID and self.extractor is not None:
            found = await self._extract(ready, sw)
            with sw.stage("grounding"):
                supported = await self.extractor.supported(text, ready.searched, ready.passages,
                                                           found)
            if supported:
                return answer
            extracted = await self._extracted(q, ready, sw, gen, found)
            if extracted is not None:
                return extracted
        if self.grounding is not None:
            with sw.stage("grounding"):
                if await self.grounding.unsupported(self.policies.for_tenant(q.tenant), text,
                                                    ready.passages):
                    return ready.refused(q.text, UNSUPPORTED_ANSWER, gen)
        return answer

    async def stream(self, q: Question) -> AsyncIterator[str | Answer]:
        """Yields checked answer text pieces, then the final Answer.

        Nothing unchecked reaches the client: the model's tokens are held back until a sentence
        (or `segment_chars` of text) is complete, that segment goes through the output check
        together with the previous segment's held-back tail (`holdback_chars`, so PII split by
        the cut is seen whole), and only the allowed or redacted text before the new tail is
        yielded. A blocked segment ends generation and the final Answer is the refusal. Time to
        first token is therefore time to the first released text.

        Where the answer is decided after generation (hybrid mode; a min_groundedness policy)
        the model's text is held until the decision (`_held`): a stream shows only the final
        answer's text, never text that is then replaced.
        """
        self.validate(q)
        sw = Stopwatch()
        with self._failures(q, sw, streamed=True) as attempt:
            # aclosing: a client that stops reading closes the generation stream at once.
            async with aclosing(self._stream(q, sw, attempt)) as items:
                async for item in items:
                    yield item

    async def _stream(self, q: Question, sw: Stopwatch, attempt: _Attempt
                      ) -> AsyncGenerator[str | Answer, None]:
        ready = await self._prepare(q, sw, attempt)
        if isinstance(ready, Answer):
            if ready.refusal:  # the message is the whole answer: streamed like one
                yield ready.text
            yield self._finish(q, ready, sw, streamed=True)
            return
        # Extractive mode streams its sentence as one piece.
        mode = self._mode(q, ready)
        extracted = await self._extracted(q, ready, sw) if mode == EXTRACTIVE else None
        if extracted is not None:
            if not extracted.blocked:
                yield extracted.text
            extracted.time_to_first_token_ms = sw.stages.get("extraction", 0.0)
            yield self._finish(q, extracted, sw, streamed=True)
            return
        if self._decided_after_generation(q, ready, mode):
            held = await self._held(q, ready, sw, mode)
            if not held.blocked:
                yield held.text
            yield self._finish(q, held, sw, streamed=True)
            return
        gen: Generation | None = None
        ttft = 0.0
        t0 = time.perf_counter()
        segments = Segmenter(self.limits.segment_chars)
        window = OutputWindow(self.guard, self.limits.holdback_chars)
        shown: list[str] = []
        worst = Verdict.ALLOW
        check_ms = 0.0
        pieces = self.generator.stream(ready.prompt, ready.model, q.max_new_tokens,
                                       q.temperature, q.seed)
        try:
            async for piece in pieces:
                if isinstance(piece, Generation):
                    gen = piece
                    ready_segments = [("".join(segments.flush()), True)]
                else:
                    ready_segments = [(s, False) for s in segments.feed(piece)]
                for segment, final in ready_segments:
                    c0 = time.perf_counter()
                    text, verdict = await window.push(segment, final)
                    check_ms += (time.perf_counter() - c0) * 1000
                    worst = max(worst, verdict, key=_SEVERITY.__getitem__)
                    if verdict is Verdict.BLOCK:
                        break
                    if not text:
                        continue
                    if not ttft:
                        ttft = (time.perf_counter() - t0) * 1000
                    shown.append(text)
                    yield text
                if worst is Verdict.BLOCK:
                    break
        finally:
            await _aclose(pieces)
        sw.stages["generation"] = (time.perf_counter() - t0) * 1000 - check_ms
        sw.stages["output_safety"] = check_ms
        assert gen is not None or worst is Verdict.BLOCK, "a stream must end with a Generation"
        answer = ready.answered(gen, "".join(shown), worst)
        answer.time_to_first_token_ms = ttft
        yield self._finish(q, answer, sw, streamed=True)

    def _decided_after_generation(self, q: Question, ready: _Ready, mode: str) -> bool:
        """Whether the generated text may still be replaced once it is complete: in hybrid mode
        by the extracted sentence, under a min_groundedness policy by the refusal."""
        if not ready.passages:
            return False
        if mode == HYBRID and self.extractor is not None:
            return True
        return (self.grounding is not None
                and self.policies.for_tenant(q.tenant).min_groundedness is not None)

    async def _held(self, q: Question, ready: _Ready, sw: Stopwatch, mode: str) -> Answer:
        """A stream whose answer is decided after generation: what a stream has shown cannot be
        taken back, so the model's text is held until the decision (the unary path's, so both
        give the same answer) and the kept text, the extracted sentence or the refusal is
        released in one piece. Time to first token is the time to that release."""
        t0 = time.perf_counter()
        answer = await self._generated(q, ready, sw, mode)
        answer.time_to_first_token_ms = (time.perf_counter() - t0) * 1000
        return answer

    def _finish(self, q: Question, answer: Answer, sw: Stopwatch, streamed: bool) -> Answer:
        """Stamps the answer with its own request id and latencies and hands it to the sink,
        which publishes (and scores) it in the background, off the answer's path."""
        error = answer.error or ("" if not answer.blocked else
                                 "INPUT_BLOCKED" if answer.input_safety is Verdict.BLOCK
                                 else "OUTPUT_BLOCKED")
        answer = dataclasses.replace(answer, stages_ms=dict(sw.stages),
                                     request_id=str(uuid.uuid4()), error=error)
        answer.stages_ms["total"] = sw.elapsed_ms()
        try:
            self.sink.submit(q, answer, streamed)
        except Exception:  # observability must not fail an answer that is ready
            log.warning("could not hand the answer to the inference-completed publisher",
                        exc_info=True)
        return answer
