"""The fast decode path on the shipped SmolLM2 (float32): the same greedy ids as transformers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmops_generation.adapters.decoder import TransformersDecoder
from llmops_generation.adapters.fast_decoder import FastDecoder
from llmops_generation.adapters.fast_llama import FastLlama
from llmops_generation.domain.model import NewSequence, SamplingParams
from llmops_generation.ports import Decoder

pytestmark = pytest.mark.integration

PROMPTS = ["Once upon a time, in a small village by the sea,", "def quicksort(arr):"]


def greedy(decoder: Decoder, ids: list[int], steps: int) -> list[int]:
    new = NewSequence(1, tuple(ids), SamplingParams(), None, False)
    out = [decoder.step([new], [])[1].token_id]
    out += [decoder.step([], [])[1].token_id for _ in range(steps - 1)]
    decoder.step([], [1])
    return out


def test_fast_path_matches_transformers_on_smollm2(model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    eos = frozenset({int(tokenizer.eos_token_id)})
    slow = TransformersDecoder(model, eos, 0)
    fast = FastDecoder(FastLlama(model), TransformersDecoder(model, eos, 0))
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt)
        assert greedy(fast, ids, 32) == greedy(slow, ids, 32), prompt
