"""Response bodies of TGI's API, built from domain events (shapes from tgi-openapi.json)."""

from __future__ import annotations

import json
import math
from typing import Any

from llmops_generation.domain.errors import GenerationServiceError
from llmops_generation.domain.model import Completion, FinishEvent, FinishReason, Token, TokenEvent

DONE = "data: [DONE]\n\n"
# Chat logprobs are non-nullable numbers in the contract; -inf (a filtered token) is not JSON.
_LOGPROB_FLOOR = -1.0e4


def sse(payload: Any) -> str:
    """One server-sent event as TGI writes it (`data:` + compact JSON)."""
    return f"data:{json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n"


def error_body(exc: GenerationServiceError) -> dict[str, str]:
    message = exc.message
    if exc.error_type == "validation" and not message.startswith("Input validation error"):
        message = f"Input validation error: {message}"
    return {"error": message, "error_type": exc.error_type}


def _logprob(value: float) -> float | None:
    return value if math.isfinite(value) else None


def token(t: Token) -> dict[str, Any]:
    return {"id": t.id, "text": t.text, "logprob": _logprob(t.logprob), "special": t.special}


def details(completion: Completion) -> dict[str, Any]:
    finish = completion.finish
    assert finish is not None
    body: dict[str, Any] = {
        "finish_reason": finish.finish_reason.value,
        "generated_tokens": finish.generated_tokens,
        "seed": finish.seed,
        "prefill": [
            {"id": p.id, "text": p.text, "logprob": None if p.logprob is None else _logprob(p.logprob)}
            for p in finish.prefill
        ],
        "tokens": [token(e.token) for e in completion.tokens],
    }
    if any(e.top_tokens for e in completion.tokens):
        body["top_tokens"] = [[token(t) for t in e.top_tokens] for e in completion.tokens]
    return body


def generate(completion: Completion, *, with_details: bool, prefix: str) -> dict[str, Any]:
    assert completion.finish is not None
    return {
        "generated_text": prefix + completion.finish.generated_text,
        "details": details(completion) if with_details else None,
    }


def stream_event(event: TokenEvent, *, with_details: bool, prefix: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "index": event.index,
        "token": token(event.token),
        "top_tokens": [token(t) for t in event.top_tokens],
        "generated_text": None,
        "details": None,
    }
    finish = event.finish
    if finish is not None:
        body["generated_text"] = prefix + finish.generated_text
        if with_details:
            body["details"] = {
                "finish_reason": finish.finish_reason.value,
                "generated_tokens": finish.generated_tokens,
                "input_length": finish.input_length,
                "seed": finish.seed,
            }
    return body


# -- chat (OpenAI / TGI Messages API) --------------------------------------------------------


def chat_finish_reason(finish: FinishEvent) -> str:
    return "length" if finish.finish_reason is FinishReason.LENGTH else "stop"


def chat_text(finish: FinishEvent) -> str:
    """OpenAI semantics: the stop sequence itself is not part of the reply."""
    text = finish.generated_text
    return text[: finish.stop_index] if finish.stop_index is not None else text


def chat_logprob(event: TokenEvent) -> dict[str, Any]:
    return {
        "token": event.token.text,
        "logprob": max(event.token.logprob, _LOGPROB_FLOOR),
        "top_logprobs": [
            {"token": t.text, "logprob": max(t.logprob, _LOGPROB_FLOOR)} for t in event.top_tokens
        ],
    }


def usage(finish: FinishEvent) -> dict[str, int]:
    return {
        "prompt_tokens": finish.input_length,
        "completion_tokens": finish.generated_tokens,
        "total_tokens": finish.input_length + finish.generated_tokens,
    }


def chat_completion(
    completion: Completion, *, id: str, created: int, model: str, fingerprint: str, logprobs: bool
) -> dict[str, Any]:
    finish = completion.finish
    assert finish is not None
    return {
        "object": "chat.completion",
        "id": id,
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": chat_text(finish)},
                "logprobs": {"content": [chat_logprob(e) for e in completion.tokens]} if logprobs else None,
                "finish_reason": chat_finish_reason(finish),
            }
        ],
        "usage": usage(finish),
    }


def chat_chunk(
    *,
    id: str,
    created: int,
    model: str,
    fingerprint: str,
    content: str | None,
    finish_reason: str | None = None,
    logprobs: list[dict[str, Any]] | None = None,
    usage_: dict[str, int] | None = None,
) -> dict[str, Any]:
    choices: list[dict[str, Any]] = []
    if content is not None:
        choices.append(
            {
                "index": 0,
                "delta": {"role": "assistant", "content": content},
                "logprobs": {"content": logprobs} if logprobs is not None else None,
                "finish_reason": finish_reason,
            }
        )
    return {
        "object": "chat.completion.chunk",
        "id": id,
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": choices,
        "usage": usage_,
    }
