"""huggingface_hub's (Async)InferenceClient against the server: the platform's real client path."""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient
from huggingface_hub.errors import UnknownError, ValidationError

pytestmark = pytest.mark.integration

PROMPT = "The capital of France is"
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(autouse=True)
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub refuses every request, localhost included, in offline mode.

    The server keeps HF_HUB_OFFLINE=1 in its own process; the client process must not have it.
    The flag is read once at import, so the module constant is patched as well.
    """
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="module")
def reference(server_url: str) -> str:
    """The greedy continuation over plain HTTP, to compare the client's results with."""
    body = httpx.post(
        f"{server_url}/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 8}}
    ).json()
    return str(body["generated_text"])


def test_text_generation_plain_details_and_stream(server_url: str, reference: str) -> None:
    client = InferenceClient(base_url=server_url)
    assert client.text_generation(PROMPT, max_new_tokens=8) == reference

    out = client.text_generation(PROMPT, max_new_tokens=8, details=True)
    assert out.generated_text == reference
    assert out.details is not None
    assert out.details.finish_reason in ("length", "eos_token", "stop_sequence")
    assert out.details.generated_tokens == len(out.details.tokens) <= 8

    pieces = list(client.text_generation(PROMPT, max_new_tokens=8, stream=True))
    assert "".join(pieces) == reference

    events = list(client.text_generation(PROMPT, max_new_tokens=8, stream=True, details=True))
    assert events[-1].generated_text == reference
    assert events[-1].details is not None and events[-1].details.generated_tokens == len(events)


def test_text_generation_errors_are_typed(server_url: str) -> None:
    client = InferenceClient(base_url=server_url)
    with pytest.raises(ValidationError, match="must have less than 256 tokens"):
        client.text_generation("hello " * 400, max_new_tokens=4)
    # An unknown adapter is a 404 (error_type not_found), which huggingface_hub types as unknown.
    with pytest.raises(UnknownError, match="adapter 'missing' is not loaded"):
        client.text_generation(PROMPT, max_new_tokens=4, adapter_id="missing")


def test_chat_completion_plain_and_stream(server_url: str, engine: str) -> None:
    client = InferenceClient(base_url=server_url)
    out = client.chat_completion(CHAT, max_tokens=16, temperature=0)
    content = out.choices[0].message.content
    # The Q4_1 GGUF in llama.cpp answers differently from its float32 conversion: bare
    # llama-cpp-python, greedy on the same prompt, says "L'Étoile, la Cité, la Nation".
    expected = "L'Étoile, la" if engine == "llamacpp" else "Paris"
    assert content and expected in content, content
    assert out.usage.completion_tokens <= 16 and out.usage.prompt_tokens > 10

    chunks = list(client.chat_completion(CHAT, max_tokens=16, temperature=0, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == content
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


async def test_async_client(server_url: str, reference: str) -> None:
    client = AsyncInferenceClient(base_url=server_url)
    assert await client.text_generation(PROMPT, max_new_tokens=8) == reference
    pieces = [p async for p in await client.text_generation(PROMPT, max_new_tokens=8, stream=True)]
    assert "".join(pieces) == reference

    out = await client.chat_completion(CHAT, max_tokens=16, temperature=0)
    stream = await client.chat_completion(CHAT, max_tokens=16, temperature=0, stream=True)
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert streamed == out.choices[0].message.content
    await client.close()
