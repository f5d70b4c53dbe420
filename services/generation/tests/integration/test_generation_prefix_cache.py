"""Prompt prefix reuse on the real SmolLM2 GGUF model in llama.cpp.

Over HTTP (per engine): the same greedy prompt twice gives the same text, and the second time
the llama.cpp server computes only its last two prompt tokens (the prefix-cache metric).
On the decoder itself, with the cache on and off over the same llama.cpp model: prompts
sharing a long prefix give exactly their uncached greedy output (flash attention off: with it
on, llama.cpp's attention rounds differently for different batch splits; see the README), and
a ~600-token prompt whose first ~450 tokens were seen before reaches its first token several
times sooner (flash attention as the server defaults).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from llmops_generation.adapters.llamacpp_decoder import LlamaCppDecoder
from llmops_generation.adapters.llamacpp_model import LlamaCppModel, default_threads
from llmops_generation.adapters.loader import TransformersLoader
from llmops_generation.bootstrap import default_spec
from llmops_generation.domain.model import NewSequence, SamplingParams
from llmops_generation.settings import Settings

from .conftest import llmops_home

pytestmark = pytest.mark.integration

MODEL = 'model="HuggingFaceTB/SmolLM2-135M-Instruct"'
FACTS = [
    "The ingestion service splits every document into chunks of about two hundred tokens.",
    "Each chunk is embedded and written to Weaviate together with its tenant and source.",
    "The inference service retrieves the closest chunks and builds a grounded prompt.",
    "Answers cite the chunks they used, and a refusal is returned when nothing is relevant.",
    "Kafka carries the events between the services, and failed events go to a dead letter topic.",
    "The trainer fine-tunes LoRA adapters and registers them as new model versions.",
]


async def _prefix_counts(http: httpx.AsyncClient) -> dict[str, float]:
    counts = {"reused": 0.0, "computed": 0.0}
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith("generation_prefix_cache_tokens_total{") and MODEL in line:
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            counts[outcome] = float(line.rsplit(" ", 1)[1])
    return counts


async def test_the_same_prompt_twice_computes_only_its_last_two_tokens_the_second_time(
    http, engine: str
) -> None:
    prompt = "Context:\n" + " ".join(FACTS) + "\nQuestion: Where are the chunks stored?\nAnswer:"
    n_tokens = len((await http.post("/tokenize", json={"inputs": prompt})).json())
    info = (await http.get("/info")).json()
    assert info["prefix_cache"] is (engine == "llamacpp")

    params = {"inputs": prompt, "parameters": {"max_new_tokens": 12}}
    first = await http.post("/generate", json=params)
    before = await _prefix_counts(http)
    second = await http.post("/generate", json=params)
    after = await _prefix_counts(http)
    assert first.status_code == second.status_code == 200
    assert second.json()["generated_text"] == first.json()["generated_text"]
    delta = {k: after[k] - before[k] for k in after}
    if engine == "llamacpp":
        assert delta == {"reused": n_tokens - 2, "computed": 2}
    else:
        assert delta == {"reused": 0, "computed": n_tokens}


# -- the decoder on the real model, cache on vs off ------------------------------------------


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    settings = Settings(llmops_home=llmops_home())
    folder = TransformersLoader(settings.models_dir).model_dir(default_spec(settings, frozenset()))
    return AutoTokenizer.from_pretrained(folder)


def _model(flash_attn: bool | None) -> LlamaCppModel:
    settings = Settings()
    assert settings.gguf_file is not None
    threads = default_threads()
    return LlamaCppModel(
        Path(settings.model_path) / settings.gguf_file,
        slots=2,
        ctx_per_slot=1024,
        n_batch=2048,
        threads=threads,
        threads_batch=threads,
        flash_attn=flash_attn,
    )


@pytest.fixture(scope="module")
def model() -> Iterator[LlamaCppModel]:
    """As the server runs it (flash attention as llama.cpp chooses)."""
    llama = _model(None)
    yield llama
    llama.close()


@pytest.fixture(scope="module")
def exact_model() -> Iterator[LlamaCppModel]:
    """Flash attention off: logits do not depend on how a prompt is split into batches."""
    llama = _model(False)
    yield llama
    llama.close()


def _decoder(
    model: LlamaCppModel, tokenizer: PreTrainedTokenizerBase, *, prefix_cache: bool
) -> LlamaCppDecoder:
    model.clear()

    def no_fallback() -> None:
        raise AssertionError("no LoRA rows here")

    eos = frozenset({int(tokenizer.eos_token_id)})
    return LlamaCppDecoder(model, eos, no_fallback, prefix_cache=prefix_cache)  # type: ignore[arg-type]


def _greedy(decoder: LlamaCppDecoder, seq_id: int, ids: list[int], n: int) -> tuple[list[int], int]:
    """`n` greedy tokens for `ids` alone, then the row ends; also the prompt tokens reused."""
    first = decoder.step([NewSequence(seq_id, tuple(ids), SamplingParams(), None, False)], [])[seq_id]
    tokens = [first.token_id]
    while len(tokens) < n:
        tokens.append(decoder.step([], [])[seq_id].token_id)
    decoder.step([], [seq_id])
    return tokens, first.reused_prompt_tokens


def _prompt(tokenizer: PreTrainedTokenizerBase, facts: int, question: str) -> list[int]:
    text = "Context:\n" + "\n".join(FACTS[i % len(FACTS)] for i in range(facts))
    return list(tokenizer(f"{text}\nQuestion: {question}\nAnswer:")["input_ids"])


def test_prompts_sharing_a_long_prefix_give_their_uncached_greedy_output(exact_model, tokenizer) -> None:
    model = exact_model
    a = _prompt(tokenizer, 12, "What does the trainer register?")
    b = _prompt(tokenizer, 12, "Where do failed events go?")
    shared = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert shared > 150

    off = _decoder(model, tokenizer, prefix_cache=False)
    expected = [_greedy(off, 1, a, 16)[0], _greedy(off, 2, b, 16)[0]]
    assert expected[0] != expected[1]

    on = _decoder(model, tokenizer, prefix_cache=True)
    got_a, reused_a = _greedy(on, 1, a, 16)
    got_b, reused_b = _greedy(on, 2, b, 16)
    got_a2, reused_a2 = _greedy(on, 3, a, 16)
    assert (reused_a, reused_b, reused_a2) == (0, shared, shared)
    assert [got_a, got_b, got_a2] == [expected[0], expected[1], expected[0]]


def test_time_to_first_token_drops_when_most_of_the_prompt_was_seen(model, tokenizer) -> None:
    long = _prompt(tokenizer, 34, "Which service builds the grounded prompt?")
    seen = _prompt(tokenizer, 25, "What does ingestion do?")
    shared = next(i for i, (x, y) in enumerate(zip(long, seen, strict=False)) if x != y)
    assert 550 <= len(long) <= 700 and 400 <= shared <= 500, (len(long), shared)

    def first_token_seconds(decoder: LlamaCppDecoder, seq_id: int) -> float:
        started = time.perf_counter()
        decoder.step([NewSequence(seq_id, tuple(long), SamplingParams(), None, False)], [])
        elapsed = time.perf_counter() - started
        decoder.step([], [seq_id])
        return elapsed

    cold: list[float] = []
    warm: list[float] = []
    decoder = _decoder(model, tokenizer, prefix_cache=True)
    for i in range(3):
        decoder.reset()
        cold.append(first_token_seconds(decoder, 10 * i + 1))
        decoder.reset()
        _greedy(decoder, 10 * i + 2, seen, 1)
        warm.append(first_token_seconds(decoder, 10 * i + 3))
    # ~150 of ~600 tokens computed: about 4x less work; the margin covers a loaded machine.
    assert min(warm) < 0.6 * min(cold), (cold, warm)
