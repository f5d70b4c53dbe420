"""Plain data of the inference domain."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# How an answer is made (AnswerPolicy.answer_mode; domain/extractive.py): the model's text,
# a sentence copied from the passages, or the model's text unless the passages do not
# support it.
GENERATIVE = "generative"
EXTRACTIVE = "extractive"
HYBRID = "hybrid"
ANSWER_MODES = (GENERATIVE, EXTRACTIVE, HYBRID)


class Verdict(enum.Enum):
    ALLOW = "allow"
    REDACT = "redact"
    BLOCK = "block"


@dataclass(frozen=True)
class Question:
    tenant: str
    text: str
    model_alias: str
    prompt_name: str
    prompt_label: str
    rag: bool
    top_k: int
    max_new_tokens: int
    temperature: float | None = None
    seed: int | None = None
    use_cache: bool = True
    # Serve exactly this registry version (the tenant's own or shared) instead of resolving
    # model_alias; 0: resolve the alias. Evaluation runs pin the version they measure.
    model_version: int = 0


@dataclass(frozen=True)
class Passage:
    marker: int
    document_id: str
    chunk_id: str
    title: str
    text: str
    score: float
    # The chunk's place in its document (-1: unknown), for merging neighbours.
    chunk_index: int = -1
    # Cosine of the chunk to the question (None: the store did not say).
    similarity: float | None = None
    # Every chunk merged into this passage, in document order (empty: just chunk_id).
    chunk_ids: tuple[str, ...] = ()

    @property
    def all_chunk_ids(self) -> tuple[str, ...]:
        return self.chunk_ids or (self.chunk_id,)


class InjectionAction(enum.Enum):
    """What the tenant's policy did with a passage that tries to instruct the model."""

    DROPPED = "dropped"
    NEUTRALISED = "neutralised"


@dataclass(frozen=True)
class SafetyResult:
    verdict: Verdict
    redacted_text: str
    categories: tuple[str, ...] = ()
    # (start, end, label): each span of the checked text that redacted_text replaced. Lets the
    # stream release a redacted prefix of a text that was checked as a whole.
    replacements: tuple[tuple[int, int, str], ...] = ()
    # Context passages only: set when the passage tried to instruct the model.
    injection_action: InjectionAction | None = None
    injection_score: float = 0.0


@dataclass(frozen=True)
class GuardedPassage:
    """A retrieved passage dropped or neutralised as indirect prompt injection."""

    document_id: str
    chunk_id: str
    action: InjectionAction
    injection_score: float


@dataclass(frozen=True)
class ModelRef:
    """A registry model version and how the generation backend addresses it."""

    name: str
    version: int
    # TGI adapter id (LoRA) or None for the server's base model.
    adapter_id: str | None = None
    # A LoRA version's weights, or a full model's folder (full_model), for a backend that loads
    # them on demand; "" otherwise.
    artifact_uri: str = ""
    # True when the tenant's canary routed the request to this (candidate) version.
    canary: bool = False
    # True: adapter_id names a full model the backend loads from artifact_uri on first use.
    full_model: bool = False

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class RenderedPrompt:
    name: str
    version: int
    system: str
    user: str

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    # The version label of what the backend says served it ("" when it did not say).
    model_version: str = ""


@dataclass
class Answer:
    text: str
    passages: list[Passage]
    model: ModelRef | None
    prompt: RenderedPrompt | None
    input_safety: Verdict
    output_safety: Verdict
    blocked: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""
    cached: bool = False
    stages_ms: dict[str, float] = field(default_factory=dict)
    time_to_first_token_ms: float = 0.0
    # Every passage retrieved for the prompt, in rank order (passages: the cited ones).
    retrieved: list[Passage] = field(default_factory=list)
    # Retrieved passages that tried to instruct the model, and what was done with them.
    guarded: list[GuardedPassage] = field(default_factory=list)
    # What the generation backend says served the answer (see Generation.model_version).
    served_version: str = ""
    # Identifies this answer (GenerateResponse.request_id == InferenceCompleted's event id);
    # set when the answer is finished, a new one for every answer, cached ones included.
    request_id: str = ""
    # The text retrieval embedded and searched (the question, redacted when it held PII) and
    # its vector: reused as the event's question embedding when it is the redacted question.
    searched_text: str = ""
    query_vector: list[float] = field(default_factory=list)
    # Empty on success; else why the request failed, as InferenceCompleted.error's codes.
    error: str = ""
    # The directions whose verdict above is real: a request that failed before its output
    # (or input) check reports that outcome as unspecified in its event.
    checked: tuple[str, ...] = ("input", "output")
    # Set when the answer is "the documents do not cover this" (domain/refusal.py): why.
    refusal: str = ""
    # Best cosine of the question to a retrieved chunk (None: not known).
    retrieval_score: float | None = None

    @property
    def model_version(self) -> str:
        """The version reported to the caller and in events: the one that really served."""
        return self.served_version or (self.model.label if self.model else "")


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    model: str


@dataclass(frozen=True)
class Quality:
    """What the background step adds to an answer's event (all optional: it may fail)."""

    question_embedding: list[float] = field(default_factory=list)
    embedding_model: str = ""
    # None when not scored (no answer sentences, no passages, scoring off or failed).
    groundedness: float | None = None
    answer_sentences: int = 0
    supported_sentences: int = 0
    # Best cosine between the question and a retrieved passage (0: not measured).
    best_retrieval_score: float = 0.0


@dataclass(frozen=True)
class Feedback:
    """A user's rating of an answer, its comment already PII-redacted."""

    tenant: str
    request_id: str
    rating: int
    redacted_comment: str
