"""TgiGenerator's retry, backoff and deadline handling, with the HTTP client replaced."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from huggingface_hub.errors import HfHubHTTPError

from llmops.registry.v1 import registry_pb2
from llmops_inference.adapters.registry import model_ref
from llmops_inference.adapters.tgi import AdapterLoader, TgiGenerator
from llmops_inference.domain.model import ModelRef, RenderedPrompt
from llmops_kit.context import bound
from llmops_kit.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, Unavailable

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


def loader_with(handler: Any) -> AdapterLoader:
    loader = AdapterLoader("http://gen", 5)
    loader.http = httpx.AsyncClient(base_url="http://gen", transport=httpx.MockTransport(handler))
    return loader


LORA = ModelRef("smollm2", 3, "smollm2-v3", "file:///models/smollm2/v3")


async def test_a_lora_version_is_loaded_once_on_first_use() -> None:
    seen: list[tuple[str, str]] = []
    served: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.method == "POST":
            body = json.loads(request.content)
            served.append(body)
            return httpx.Response(201, json=body)
        return httpx.Response(200, json={"adapters": [{"adapter_id": a["adapter_id"]}
                                                      for a in served]})

    loader = loader_with(handler)
    await loader.prepare(ModelRef("smollm2", 1))  # the base model: nothing to load
    await loader.prepare(ModelRef("smollm2", 2, "smollm2-full-v2"))  # served already, no weights
    await loader.prepare(LORA)
    await loader.prepare(LORA)
    assert served == [{"adapter_id": "smollm2-v3", "path": "/models/smollm2/v3"}]
    assert seen == [("GET", "/admin/adapters"), ("POST", "/admin/adapters")]
    loader.forget()  # e.g. the backend restarted
    await loader.prepare(LORA)
    assert seen[-1] == ("GET", "/admin/adapters") and len(served) == 1


async def test_a_backend_without_the_admin_route_keeps_its_own_adapters() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(404)

    loader = loader_with(handler)
    await loader.prepare(LORA)
    await loader.prepare(LORA)
    assert calls == ["/admin/adapters"] and not loader.supported


async def test_an_adapter_the_server_refuses_is_a_failed_precondition() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(422, json={"error": "no adapter_config.json"})
        return httpx.Response(200, json={"adapters": []})

    with pytest.raises(FailedPrecondition) as err:
        await loader_with(handler).prepare(LORA)
    assert err.value.reason == "ADAPTER_NOT_SERVED" and "adapter_config.json" in err.value.message


def version(fmt: str, **metadata: str) -> registry_pb2.ModelVersion:
    return registry_pb2.ModelVersion(name="smollm2", version=4, format=fmt,
                                     artifact_uri="file:///models/v4", metadata=metadata)


def test_how_each_kind_of_version_is_addressed() -> None:
    assert model_ref(version("peft-lora")) == ModelRef("smollm2", 4, "smollm2-v4",
                                                       "file:///models/v4")
    assert model_ref(version("peft-lora", adapter_id="support-v4")).adapter_id == "support-v4"
    # A full model: the base model, or the id under which the server already serves it.
    assert model_ref(version("gguf")) == ModelRef("smollm2", 4)
    assert model_ref(version("hf", adapter_id="smollm2-ft")) == ModelRef("smollm2", 4,
                                                                         "smollm2-ft")
