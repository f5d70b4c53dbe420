"""TgiGenerator's retry, backoff and deadline handling, with the HTTP client replaced."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from huggingface_hub.errors import HfHubHTTPError

from llmops_inference.adapters.tgi import TgiGenerator
from llmops_inference.domain.model import ModelRef, RenderedPrompt
from llmops_kit.context import bound
from llmops_kit.errors import DeadlineExceeded, InvalidArgument, Unavailable

pytestmark = pytest.mark.unit

PROMPT = RenderedPrompt("rag-answer", 1, "", "Q?")
MODEL = ModelRef("smollm2", 2, "smollm2-v2")


class Scripted:
    """chat_completion that fails as scripted, then answers."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls: list[dict[str, Any]] = []

    async def chat_completion(self, messages: list[dict[str, str]], **kw: Any) -> Any:
        self.calls.append(kw)
        if self.failures:
            raise self.failures.pop(0)
        msg = type("M", (), {"content": "ok [1]"})()
        choice = type("C", (), {"message": msg, "finish_reason": "stop"})()
        usage = type("U", (), {"prompt_tokens": 11, "completion_tokens": 3})()
        return type("R", (), {"choices": [choice], "usage": usage})()


def http_error(status: int) -> HfHubHTTPError:
    response = httpx.Response(status, request=httpx.Request("POST", "http://x/v1/chat/completions"))
    return HfHubHTTPError(f"{status} error", response=response)


def generator(script: Scripted, attempts: int = 3) -> TgiGenerator:
    gen = TgiGenerator("http://127.0.0.1:1", timeout_seconds=5, attempts=attempts,
                       backoff_seconds=0.01)
    gen.client = script  # type: ignore[assignment]
    return gen


async def test_transient_failures_are_retried_and_the_adapter_is_selected() -> None:
    script = Scripted([ConnectionRefusedError(), http_error(503)])
    out = await generator(script).generate(PROMPT, MODEL, 32, None, 7)
    assert (out.text, out.prompt_tokens, out.completion_tokens) == ("ok [1]", 11, 3)
    assert len(script.calls) == 3
    assert script.calls[-1] == {"max_tokens": 32, "seed": 7, "temperature": 0.0,
                                "model": "smollm2-v2"}


async def test_backend_down_is_unavailable_after_all_attempts() -> None:
    script = Scripted([ConnectionRefusedError()] * 3)
    with pytest.raises(Unavailable) as err:
        await generator(script).generate(PROMPT, MODEL, 32, None, None)
    assert err.value.reason == "GENERATION_UNAVAILABLE" and len(script.calls) == 3


async def test_a_refused_request_is_not_retried() -> None:
    script = Scripted([http_error(422)])
    with pytest.raises(InvalidArgument) as err:
        await generator(script).generate(PROMPT, MODEL, 32, None, None)
    assert err.value.reason == "GENERATION_REJECTED" and len(script.calls) == 1


async def test_the_callers_deadline_bounds_the_attempts() -> None:
    script = Scripted([ConnectionRefusedError()] * 3)
    gen = generator(script)
    gen.backoff = 5.0  # a retry would outlive the caller
    t0 = time.monotonic()
    with bound("acme", "t", None, time_remaining=1.0), pytest.raises(Unavailable):
        await gen.generate(PROMPT, MODEL, 32, None, None)
    assert len(script.calls) == 1 and time.monotonic() - t0 < 1.0
    with bound("acme", "t", None, time_remaining=-1.0), pytest.raises(DeadlineExceeded):
        await gen.generate(PROMPT, MODEL, 32, None, None)
    assert len(script.calls) == 1
