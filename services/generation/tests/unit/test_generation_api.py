"""The HTTP layer on the fake model: TGI shapes, SSE framing, error bodies, admin routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmops_generation.bootstrap import build_app
from llmops_generation.settings import Settings

pytestmark = pytest.mark.unit


ADMIN_KEY = "test-admin-key"


@pytest.fixture
def client(tmp_path: Path, loader) -> Iterator[TestClient]:
    settings = Settings(
        model_path=tmp_path, gguf_file=None, model_id="fake/model", max_input_tokens=40, max_total_tokens=60,
        models_root=tmp_path, admin_key=ADMIN_KEY,
    )
    with TestClient(build_app(settings, loader=loader)) as c:
        c.headers["x-api-key"] = ADMIN_KEY
        yield c


def events(text: str) -> list[dict]:
    """SSE body -> JSON payloads (and the literal [DONE])."""
    out = []
    for block in text.split("\n\n"):
        if not block:
            continue
        assert block.startswith("data:"), block
        data = block[len("data:") :].strip()
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_generate_with_and_without_details(client) -> None:
    body = client.post("/generate", json={"inputs": "q|hello", "parameters": {"max_new_tokens": 10}}).json()
    assert body["generated_text"] == "hello"
    details = body["details"]  # TGI's default is details=true
    assert details["finish_reason"] == "eos_token"
    assert details["generated_tokens"] == 6
    assert [t["text"] for t in details["tokens"]] == ["h", "e", "l", "l", "o", "</s>"]
    assert details["tokens"][-1]["special"] is True
    assert details["prefill"] == [] and details["seed"] is None

    plain = client.post(
        "/generate", json={"inputs": "q|hi", "parameters": {"details": False, "return_full_text": True}}
    ).json()
    assert plain == {"generated_text": "q|hihi", "details": None}


def test_sampling_reports_its_seed(client) -> None:
    body = client.post(
        "/generate", json={"inputs": "q|x", "parameters": {"do_sample": True, "seed": 7}}
    ).json()
    assert body["details"]["seed"] == 7


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"inputs": "x" * 41}, "`inputs` must have less than 40 tokens. Given: 41"),
        ({"inputs": "q", "parameters": {"max_new_tokens": 60}}, "must be <= 60"),
        ({"inputs": 5}, "inputs"),
        ({"parameters": {}}, "inputs"),
        ({"inputs": "q", "parameters": {"details": "yes"}}, "parameters.details"),
        ({"inputs": "q", "parameters": {"temperature": -1}}, "`temperature` must be strictly positive"),
        ({"inputs": "q", "parameters": {"grammar": {"type": "regex", "value": "a+"}}},
         "`grammar` is not supported"),
        ({"inputs": "q", "parameters": {"grammar": {"type": "regex", "value": 5}}},
         "parameters.grammar.regex.value"),
    ],
)
def test_invalid_requests_get_tgi_error_shape(client, payload, fragment) -> None:
    response = client.post("/generate", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"error", "error_type"}
    assert body["error_type"] == "validation"
    assert body["error"].startswith("Input validation error")
    assert fragment in body["error"]


def test_generate_stream_events(client) -> None:
    response = client.post("/generate_stream", json={"inputs": "q|abc", "parameters": {"max_new_tokens": 2}})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = events(response.text)
    assert [p["index"] for p in payloads] == [1, 2]
    assert [p["token"]["text"] for p in payloads] == ["a", "b"]
    assert payloads[0]["generated_text"] is None and payloads[0]["details"] is None
    assert payloads[-1]["generated_text"] == "ab"
    assert payloads[-1]["details"] == {
        "finish_reason": "length",
        "generated_tokens": 2,
        "input_length": 5,
        "seed": None,
    }


def test_generate_stream_validation_error_is_an_sse_422(client) -> None:
    response = client.post("/generate_stream", json={"inputs": "x" * 50})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/event-stream")
    [payload] = events(response.text)
    assert payload["error_type"] == "validation"


def test_compat_route_returns_a_list_or_a_stream(client) -> None:
    body = client.post("/", json={"inputs": "q|ok", "parameters": {"details": False}}).json()
    assert body == [{"generated_text": "ok", "details": None}]
    streamed = client.post("/", json={"inputs": "q|ok", "stream": True})
    assert [p["token"]["text"] for p in events(streamed.text)] == ["o", "k", "</s>"]
    error = client.post("/", json={"inputs": "x" * 50, "stream": True})
    assert error.status_code == 422 and error.json()["error_type"] == "validation"


def test_chat_completion(client) -> None:
    body = client.post(
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": "q|Paris. END more"}],
            "stop": [" END"],
            "temperature": 0,
        },
    ).json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "fake/model"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Paris."}
    assert choice["finish_reason"] == "stop"
    prompt_tokens = len("user: q|Paris. END more\nassistant: ")
    assert body["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 10,
        "total_tokens": prompt_tokens + 10,
    }


def test_chat_stream(client) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": [{"type": "text", "text": "q|Hi"}]}],
            "stream": True,
            "max_tokens": 5,
            "logprobs": True,
            "top_logprobs": 1,
            "stream_options": {"include_usage": True},
        },
    )
    payloads = events(response.text)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"])
    assert content == "Hi"
    assert chunks[0]["choices"][0]["logprobs"]["content"][0]["top_logprobs"] == [
        {"token": "H", "logprob": -0.5}
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize(
    ("messages", "error_type"),
    [
        ([{"role": "bad", "content": "x"}], "template_error"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}],
            "validation",
        ),
        ([], "validation"),
        ([{"role": "user"}], "validation"),
    ],
)
def test_chat_errors(client, messages, error_type) -> None:
    response = client.post("/v1/chat/completions", json={"messages": messages})
    assert response.status_code == 422
    assert response.json()["error_type"] == error_type


def test_tokenize_refuses_a_malformed_grammar_like_every_route(client) -> None:
    bad = {"inputs": "hi", "parameters": {"grammar": {"type": "json_schema", "value": {}}}}
    response = client.post("/tokenize", json=bad)
    assert response.status_code == 422 and response.json()["error_type"] == "validation"
    good = {"inputs": "hi", "parameters": {"grammar": {"type": "json_schema",
                                                      "value": {"schema": {"type": "object"}}}}}
    assert client.post("/tokenize", json=good).status_code == 200


def test_tokenize_info_health_metrics(client) -> None:
    tokens = client.post("/tokenize", json={"inputs": "hi!"}).json()
    assert tokens == [
        {"id": 104, "text": "h", "start": 0, "stop": 1},
        {"id": 105, "text": "i", "start": 1, "stop": 2},
        {"id": 33, "text": "!", "start": 2, "stop": 3},
    ]
    info = client.get("/info").json()
    assert info["model_id"] == "fake/model"
    assert (info["max_input_tokens"], info["max_total_tokens"], info["max_best_of"]) == (40, 60, 1)
    assert (info["fast_decode"], info["decode_path"]) == (True, "fake")
    assert client.get("/health").status_code == 200
    client.post("/generate", json={"inputs": "q|a"})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'tgi_request_success_total{route="generate"} 1.0' in metrics.text
    assert "tgi_batch_forward_duration_count" in metrics.text
    # The fake engine reuses no prefix: the 3 prompt tokens of "q|a" were computed.
    assert info["prefix_cache"] is False
    computed = 'generation_prefix_cache_tokens_total{model="fake/model",outcome="computed"} 3.0'
    assert computed in metrics.text


def test_prefix_cache_metric_counts_reused_and_computed_prompt_tokens(client, loader) -> None:
    loader.decoders["fake/model"].reuse = 4
    for prompt in ("question|a", "question|b"):
        assert client.post("/generate", json={"inputs": prompt}).status_code == 200
    metrics = client.get("/metrics").text
    # Two 10-token prompts, 4 tokens of each from the cache.
    assert 'generation_prefix_cache_tokens_total{model="fake/model",outcome="reused"} 8.0' in metrics
    assert 'generation_prefix_cache_tokens_total{model="fake/model",outcome="computed"} 12.0' in metrics


def test_adapters_load_select_and_unload(client, tmp_path: Path) -> None:
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    created = client.post("/admin/adapters", json={"adapter_id": "v2", "path": str(adapter)})
    assert created.status_code == 201 and created.json()["base_model"] == "fake/model"
    assert client.get("/admin/adapters").json()["adapters"] == [
        {"adapter_id": "v2", "base_model": "fake/model", "path": str(adapter)}
    ]
    tuned = client.post("/generate", json={"inputs": "q|hey", "parameters": {"adapter_id": "v2"}}).json()
    base = client.post("/generate", json={"inputs": "q|hey"}).json()
    assert (tuned["generated_text"], base["generated_text"]) == ("HEY", "hey")
    chat = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "q|yo"}], "model": "v2"}
    )
    assert chat.json()["choices"][0]["message"]["content"] == "YO"
    assert chat.json()["model"] == "v2"

    assert client.post("/admin/adapters", json={"adapter_id": "v2", "path": str(adapter)}).status_code == 409
    assert client.delete("/admin/adapters/v2").json() == {"unloaded": "v2"}
    gone = client.post("/generate", json={"inputs": "q|hey", "parameters": {"adapter_id": "v2"}})
    assert gone.status_code == 404
    assert gone.json() == {"error": "model or adapter 'v2' is not loaded", "error_type": "not_found"}
    assert client.delete("/admin/adapters/v2").status_code == 404
    # A placeholder model name in chat (huggingface_hub sends one) gets the default model.
    chat = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "q|yo"}], "model": "tgi"}
    )
    assert chat.json()["choices"][0]["message"]["content"] == "yo"


def test_bad_adapter_folder_is_rejected(client, tmp_path: Path) -> None:
    assert client.post("/admin/adapters", json={"adapter_id": "x", "path": str(tmp_path)}).status_code == 422
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{}")
    response = client.post("/admin/adapters", json={"adapter_id": "x", "path": str(broken)})
    assert response.status_code == 422 and "could not be loaded" in response.json()["error"]


def test_full_models_load_and_unload(client, tmp_path: Path, loader) -> None:
    created = client.post("/admin/models", json={"model_id": "fake/v2", "path": str(tmp_path)})
    assert created.status_code == 201
    listed = {m["model_id"]: m["default"] for m in client.get("/admin/models").json()["models"]}
    assert listed == {"fake/model": True, "fake/v2": False}
    body = client.post("/generate", json={"inputs": "q|a", "parameters": {"adapter_id": "fake/v2"}}).json()
    assert body["generated_text"] == "a"
    assert loader.decoders["fake/v2"].calls  # it ran on the second model
    assert not loader.decoders["fake/model"].calls
    assert client.delete("/admin/models/fake/model").status_code == 409
    assert client.delete("/admin/models/fake/v2").json() == {"unloaded": "fake/v2"}
    assert loader.decoders["fake/v2"].closed
    missing = client.post("/admin/models", json={"model_id": "m3", "path": str(tmp_path / "nope")})
    assert missing.status_code == 422
