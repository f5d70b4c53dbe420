"""The Messages API (/v1/chat/completions) mapped onto the generation domain, as TGI maps it."""

from __future__ import annotations

from llmops_generation.api.schemas import ChatRequest, ImageChunk
from llmops_generation.domain.errors import ValidationError
from llmops_generation.domain.model import TokenEvent
from llmops_generation.domain.text import StopSequences
from llmops_generation.domain.validation import RawParameters


def chat_messages(request: ChatRequest) -> list[dict[str, str]]:
    """Messages as the chat template wants them: role and text content."""
    if not request.messages:
        raise ValidationError("`messages` cannot be empty")
    out: list[dict[str, str]] = []
    for i, message in enumerate(request.messages):
        if message.tool_calls:
            raise ValidationError(f"messages[{i}]: tool calls are not supported by this server")
        content = message.content
        if content is None:
            raise ValidationError(f"messages[{i}]: `content` is required")
        if isinstance(content, list):
            if any(isinstance(chunk, ImageChunk) for chunk in content):
                raise ValidationError(f"messages[{i}]: image inputs are not supported by this model")
            content = "".join(chunk.text for chunk in content if not isinstance(chunk, ImageChunk))
        out.append({"role": message.role, "content": content})
    return out


def chat_parameters(request: ChatRequest) -> RawParameters:
    if request.n not in (None, 1):
        raise ValidationError("`n` > 1 is not supported by this server")
    if request.tools and request.tool_choice != "none":
        raise ValidationError("tools are not supported by this server")
    if request.response_format is not None:
        raise ValidationError("`response_format` is not supported by this server")
    if request.temperature is not None and request.temperature < 0:
        raise ValidationError("`temperature` must be >= 0")
    # TGI: temperature 0 means greedy; no temperature means sampling at temperature 1.
    greedy = request.temperature == 0
    return RawParameters(
        max_new_tokens=request.max_tokens,
        do_sample=not greedy,
        temperature=None if greedy else request.temperature,
        top_p=request.top_p,
        frequency_penalty=request.frequency_penalty,
        presence_penalty=request.presence_penalty,
        seed=request.seed,
        stop=tuple(request.stop or ()),
        top_n_tokens=request.top_logprobs if request.logprobs else None,
    )


class ChatStreamText:
    """What each streamed token adds to the reply, with any stop sequence cut out.

    Text that could be the start of a stop sequence is held back until a later token shows
    it is not (or the sequence ends), so a client never sees part of a stop sequence.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = StopSequences(stops)
        self._text = ""
        self._sent = 0

    def push(self, event: TokenEvent) -> str:
        finish = event.finish
        if finish is not None:
            text = finish.generated_text
            end = finish.stop_index if finish.stop_index is not None else len(text)
        else:
            if not event.token.special:
                self._text += event.token.text
            text = self._text
            end = self._stops.safe_length(text) if self._stops else len(text)
        piece = text[self._sent : end] if end > self._sent else ""
        self._sent = max(self._sent, end)
        return piece
