"""Plain data the domain passes around: what a request asks for and what the batcher yields."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class FinishReason(enum.StrEnum):
    LENGTH = "length"
    EOS_TOKEN = "eos_token"
    STOP_SEQUENCE = "stop_sequence"


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen; validated already (see domain.validation)."""

    do_sample: bool = False
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    # OpenAI-style penalties over the generated tokens (TGI accepts frequency_penalty too).
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    top_n_tokens: int = 0

    @property
    def needs_history(self) -> bool:
        return bool(self.repetition_penalty or self.frequency_penalty or self.presence_penalty)

    @property
    def is_plain_greedy(self) -> bool:
        """Greedy with no logits processing: the batch can take one argmax for all such rows."""
        return not self.do_sample and not self.needs_history


@dataclass(frozen=True)
class StoppingParams:
    max_new_tokens: int
    stop_sequences: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerationRequest:
    """One validated request, ready for the batcher."""

    input_ids: tuple[int, ...]
    sampling: SamplingParams
    stopping: StoppingParams
    adapter: str | None = None
    decoder_input_details: bool = False


@dataclass(frozen=True)
class NewSequence:
    """What the decoder needs to admit a sequence into the running batch."""

    seq_id: int
    input_ids: tuple[int, ...]
    sampling: SamplingParams
    adapter: str | None
    want_prefill_logprobs: bool


@dataclass(frozen=True)
class StepToken:
    """The decoder's answer for one sequence after one step."""

    token_id: int
    logprob: float
    top_tokens: tuple[tuple[int, float], ...] = ()
    # Set on a sequence's first step only, when it asked for decoder_input_details:
    # one entry per prompt token, None for the first (nothing predicts it).
    prefill_logprobs: tuple[float | None, ...] | None = None
    # Set on a sequence's first step: how many prompt tokens came from a cached prefix's KV
    # cells instead of being computed (llama.cpp engine; 0 elsewhere).
    reused_prompt_tokens: int = 0


@dataclass(frozen=True)
class Token:
    id: int
    text: str
    logprob: float
    special: bool


@dataclass(frozen=True)
class PrefillToken:
    id: int
    text: str
    logprob: float | None


@dataclass(frozen=True)
class FinishEvent:
    """The end of a sequence: everything a non-streaming response or a last SSE event needs."""

    finish_reason: FinishReason
    generated_text: str
    generated_tokens: int
    input_length: int
    seed: int | None
    prefill: tuple[PrefillToken, ...] = ()
    # Where the first stop sequence starts in generated_text (OpenAI-style APIs cut there).
    stop_index: int | None = None


@dataclass(frozen=True)
class TokenEvent:
    """One generated token, as a stream sends it; `token.text` is the text it adds (may be "").

    The last token of a sequence carries `finish`, as TGI's last stream event does.
    """

    index: int
    token: Token
    top_tokens: tuple[Token, ...] = ()
    finish: FinishEvent | None = None


@dataclass(frozen=True)
class ErrorEvent:
    error: Exception


Event = TokenEvent | ErrorEvent


@dataclass
class Completion:
    """A whole sequence, collected from its events (non-streaming routes)."""

    tokens: list[TokenEvent] = field(default_factory=list)
    finish: FinishEvent | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A full model to serve: a transformers folder, or a folder holding `gguf_file`.

    `dtype` is the numeric format it runs in (domain.numerics: "auto" is resolved against
    the CPU before a spec reaches the loader) and `dtype_reason` why that one was chosen.
    """

    model_id: str
    path: Path
    gguf_file: str | None = None
    dtype: str = "float32"
    dtype_reason: str = ""
