"""What the inference pipeline needs from the rest of the platform."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from llmops_inference.domain.model import (
    Answer,
    Embeddings,
    Feedback,
    Generation,
    ModelRef,
    Passage,
    Question,
    RenderedPrompt,
    SafetyResult,
)


class Retriever(Protocol):
    """Two calls, so the answer's latency shows embedding and search apart."""

    async def embed(self, question: str) -> list[float]: ...

    async def search(self, question: str, vector: Sequence[float], top_k: int
                     ) -> list[Passage]: ...


class PromptRenderer(Protocol):
    async def render(
        self, name: str, label: str, question: str, passages: Sequence[Passage]
    ) -> RenderedPrompt: ...


class ModelResolver(Protocol):
    async def resolve(self, alias: str) -> ModelRef: ...

    async def resolve_version(self, version: int) -> ModelRef:
        """Exactly that version of the served model, if the caller's tenant may use it (its
        own or a shared one); NOT_FOUND otherwise."""
        ...

    def invalidate(self, model_name: str | None = None, tenant: str | None = None) -> None:
        """Forgets cached resolutions of a model (None: any) for one tenant (None: all)."""
        ...


class Guard(Protocol):
    async def check(self, text: str, direction: str) -> SafetyResult: ...

    async def redact(self, text: str) -> str: ...


class Generator(Protocol):
    async def prepare(self, model: ModelRef) -> None:
        """Makes sure the backend serves `model` (e.g. loads its LoRA adapter); idempotent."""
        ...

    async def generate(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                       temperature: float | None, seed: int | None) -> Generation: ...

    def stream(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
               temperature: float | None, seed: int | None) -> AsyncIterator[str | Generation]:
        """Yields text pieces, then one final Generation with the token counts."""
        ...


class CompletionSink(Protocol):
    def submit(self, question: Question, answer: Answer, streamed: bool) -> None:
        """Takes a finished (or failed) answer and returns at once: redaction, quality
        scoring and publishing InferenceCompleted happen in the background, never on the
        answer's path. Must not raise."""
        ...


class Embedder(Protocol):
    """The embedding service, for scoring answers (one call per answer)."""

    async def embed_texts(self, texts: Sequence[str]) -> Embeddings: ...

    async def model_name(self) -> str:
        """The model the service embeds with (asked once, then remembered)."""
        ...


class FeedbackPublisher(Protocol):
    async def publish(self, feedback: Feedback) -> str:
        """Publishes FeedbackSubmitted; returns its event id."""
        ...
