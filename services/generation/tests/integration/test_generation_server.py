"""The real server with SmolLM2: batching correctness, TGI parameters and errors, over HTTP."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from llmops_generation.adapters.llamacpp_model import backend
from llmops_generation.adapters.llamacpp_weights import build_features, q8_0_gemm

pytestmark = pytest.mark.integration

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):",
    "Here is a list of fruits: apple, banana,",
    "Photosynthesis is the process by which",
    "Kafka is a distributed event streaming platform that",
    "1, 2, 3, 4,",
    "The theory of relativity, proposed by Albert Einstein,",
]


async def generate(http: httpx.AsyncClient, inputs: str, **parameters: object) -> dict:
    response = await http.post("/generate", json={"inputs": inputs, "parameters": parameters})
    assert response.status_code == 200, response.text
    return response.json()


def sse_payloads(text: str) -> list[dict]:
    return [json.loads(block[len("data:") :]) for block in text.split("\n\n") if block.startswith("data:")]


async def test_concurrent_requests_get_their_single_request_greedy_output(http) -> None:
    alone = [(await generate(http, p, max_new_tokens=12))["generated_text"] for p in PROMPTS]
    before = (await http.get("/metrics")).text

    async def later(i: int, prompt: str) -> dict:
        # Staggered starts: some requests join a batch that is already decoding.
        await asyncio.sleep(0.05 * i)
        return await generate(http, prompt, max_new_tokens=12)

    together = await asyncio.gather(*(later(i, p) for i, p in enumerate(PROMPTS)))
    # float32: left-padding and joining mid-flight change nothing, token for token.
    assert [r["generated_text"] for r in together] == alone
    assert len(set(alone)) == len(PROMPTS)

    def steps_and_rows(metrics: str) -> tuple[float, float]:
        values = {}
        for line in metrics.splitlines():
            # Other tests load more models; count the default model's steps only.
            default = 'model="HuggingFaceTB/SmolLM2-135M-Instruct"' in line
            if default and line.startswith(("tgi_batch_forward_size_count", "tgi_batch_forward_size_sum")):
                values[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
        return values["tgi_batch_forward_size_count"], values["tgi_batch_forward_size_sum"]

    steps0, rows0 = steps_and_rows(before)
    steps1, rows1 = steps_and_rows((await http.get("/metrics")).text)
    # 8 x 12 tokens took far fewer than 96 steps: they really were decoded together.
    assert rows1 - rows0 == 8 * 12
    assert steps1 - steps0 < 8 * 12 / 2


async def test_too_long_prompt_is_a_422_with_tgi_error_shape(http) -> None:
    long_prompt = "hello " * 400
    response = await http.post("/generate", json={"inputs": long_prompt})
    assert response.status_code == 422
    body = response.json()
    assert body["error_type"] == "validation"
    assert "`inputs` must have less than 256 tokens" in body["error"]

    stream = await http.post("/generate_stream", json={"inputs": long_prompt})
    assert stream.status_code == 422
    assert sse_payloads(stream.text)[0]["error_type"] == "validation"

    chat = await http.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": long_prompt}]}
    )
    assert chat.status_code == 422 and chat.json()["error_type"] == "validation"

    # truncate keeps the last tokens and makes the same prompt acceptable.
    ok = await generate(http, long_prompt, truncate=10, max_new_tokens=2, details=True)
    assert ok["details"]["generated_tokens"] == 2


async def test_stop_sequence_and_eos(http) -> None:
    body = await generate(http, "The capital of France is", max_new_tokens=30, stop=["."], details=True)
    assert body["details"]["finish_reason"] == "stop_sequence"
    assert body["generated_text"].endswith(".")
    assert "." not in body["generated_text"][:-1]

    chat = (
        await http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 40, "temperature": 0},
        )
    ).json()
    assert chat["choices"][0]["finish_reason"] == "stop"  # the model ended with <|im_end|>
    assert chat["usage"]["completion_tokens"] < 40
    assert "<|im_end|>" not in chat["choices"][0]["message"]["content"]


async def test_seeded_sampling_is_reproducible(http) -> None:
    params = {
        "do_sample": True,
        "temperature": 1.3,
        "top_k": 50,
        "top_p": 0.95,
        "max_new_tokens": 16,
        "details": True,
    }
    first = await generate(http, "My favourite animal is", seed=1234, **params)
    again = await generate(http, "My favourite animal is", seed=1234, **params)
    other = await generate(http, "My favourite animal is", seed=99, **params)
    assert first["generated_text"] == again["generated_text"]
    assert first["details"]["seed"] == 1234
    assert other["generated_text"] != first["generated_text"]
    unseeded = await generate(http, "My favourite animal is", **params)
    assert isinstance(unseeded["details"]["seed"], int) and unseeded["details"]["seed"] > 0


async def test_details_return_full_text_and_repetition_penalty(http) -> None:
    prompt = "1, 2, 3, 4,"
    body = await generate(
        http,
        prompt,
        max_new_tokens=6,
        details=True,
        decoder_input_details=True,
        top_n_tokens=3,
        return_full_text=True,
    )
    assert body["generated_text"].startswith(prompt)
    details = body["details"]
    assert len(details["tokens"]) == details["generated_tokens"] == 6
    assert "".join(t["text"] for t in details["tokens"]) == body["generated_text"][len(prompt) :]
    assert details["prefill"][0]["logprob"] is None
    assert all(p["logprob"] < 0 for p in details["prefill"][1:])
    assert [len(top) for top in details["top_tokens"]] == [3] * 6
    # Greedy picks the most likely token: the first of the top tokens.
    assert [top[0]["id"] for top in details["top_tokens"]] == [t["id"] for t in details["tokens"]]

    plain = await generate(http, prompt, max_new_tokens=12)
    penalised = await generate(http, prompt, max_new_tokens=12, repetition_penalty=3.0)
    assert penalised["generated_text"] != plain["generated_text"]


async def test_stream_tokens_add_up_to_the_generated_text(http) -> None:
    response = await http.post(
        "/generate_stream", json={"inputs": "Once upon a time", "parameters": {"max_new_tokens": 10}}
    )
    assert response.status_code == 200
    events = sse_payloads(response.text)
    assert [e["index"] for e in events] == list(range(1, 11))
    assert "".join(e["token"]["text"] for e in events) == events[-1]["generated_text"]
    assert events[-1]["details"]["input_length"] == 4
    plain = await generate(http, "Once upon a time", max_new_tokens=10)
    assert events[-1]["generated_text"] == plain["generated_text"]


async def test_tokenize_info_metrics_health(http, engine: str) -> None:
    text = "Hello world, tokenizers!"
    tokens = (await http.post("/tokenize", json={"inputs": text})).json()
    assert "".join(t["text"] for t in tokens) == text
    assert all(text[t["start"] : t["stop"]] == t["text"] for t in tokens)
    info = (await http.get("/info")).json()
    assert info["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert (info["max_input_tokens"], info["max_total_tokens"]) == (256, 320)
    # The tests' server sets LLMOPS_GENERATION_DTYPE=float32 (see conftest.py).
    assert (info["model_dtype"], info["dtype_reason"]) == (
        "float32", "requested by setting LLMOPS_GENERATION_DTYPE")
    assert info["engine"] == engine
    if engine == "llamacpp":
        # The Q4_1 file is served as a Q8_0 copy where this CPU has llama.cpp's Q8_0 matrix
        # kernels (every x86 with AVX, ARM with dot product); LoRA rows run on transformers.
        features = build_features(backend())
        widened = q8_0_gemm(features)
        served = "Q8_0" if widened else "Q4_1"
        weights = info["llamacpp_weights"]
        assert (weights["file"], weights["served"]) == ("Q4_1", served)
        # llama.cpp's AMX kernel crashes on some AMX CPUs: its extra layouts are off there.
        assert weights["extra_buffers"] is ("AMX_INT8" not in features)
        assert ("no repacked or AMX weights" in info["decode_path"]) is ("AMX_INT8" in features)
        assert info["decode_path"].startswith(
            "llama.cpp (Q8_0 copy of the file's Q4_1; " if widened else "llama.cpp (the file's Q4_1; ")
        assert info["decode_path"].endswith("; LoRA rows on transformers float32)")
    else:
        # SmolLM2 is a Llama: the fast decode path serves it (LLMOPS_GENERATION_FAST_DECODE defaults on).
        fast = (True, "fast (float32; LoRA rows on transformers)")
        assert (info["fast_decode"], info["decode_path"]) == fast
        assert info["llamacpp_weights"] is None
    assert (await http.get("/health")).status_code == 200
    metrics = (await http.get("/metrics")).text
    assert "tgi_request_duration_bucket" in metrics and "tgi_queue_size" in metrics


async def test_a_client_that_hangs_up_frees_its_batch_slot(http) -> None:
    request = {"inputs": "Once upon a time", "parameters": {"max_new_tokens": 300}}
    async with http.stream("POST", "/generate_stream", json=request) as response:
        lines = response.aiter_lines()
        while not (await anext(lines)).startswith("data:"):
            pass
        running = (await http.get("/admin/models")).json()["models"][0]["running"]
        assert running == 1
    # 300 tokens would take ~10 s; the abandoned sequence leaves the batch right away.
    for _ in range(40):
        models = (await http.get("/admin/models")).json()["models"]
        if models[0]["running"] == 0:
            break
        await asyncio.sleep(0.05)
    assert models[0]["running"] == 0


@pytest.mark.parametrize(("route", "payload"), [
    ("/generate", {"inputs": "1, 2, 3, 4, 5, 6,",
                   "parameters": {"max_new_tokens": 200}}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Write a long story."}],
                              "max_tokens": 200}),
])
async def test_a_waiting_client_that_hangs_up_frees_its_batch_slot(
    http: httpx.AsyncClient, server_url: str, route: str, payload: dict
) -> None:
    async def running() -> int:
        models = (await http.get("/admin/models")).json()["models"]
        return sum(m["running"] + m["waiting"] for m in models)

    assert await running() == 0
    async with httpx.AsyncClient(base_url=server_url) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post(route, json=payload, timeout=0.5)
    # 200 tokens take several seconds here; the sequence must leave well before that.
    for _ in range(20):
        if await running() == 0:
            break
        await asyncio.sleep(0.1)
    assert await running() == 0
