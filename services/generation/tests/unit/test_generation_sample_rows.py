"""The numpy fast path over llama.cpp's logits chooses what sample_batch (torch) chooses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmops_generation.adapters.sampling import RowSampler, greedy_rows, sample_batch, sample_rows
from llmops_generation.domain.model import SamplingParams

pytestmark = pytest.mark.unit

PARAMS = [
    SamplingParams(),
    SamplingParams(top_n_tokens=3),
    SamplingParams(do_sample=True, temperature=0.8, top_k=20, top_p=0.9, seed=7),
    SamplingParams(repetition_penalty=1.3),
    SamplingParams(),
    SamplingParams(frequency_penalty=0.5, presence_penalty=0.2),
]


def test_greedy_rows_are_the_argmax_and_its_log_softmax() -> None:
    logits = np.random.default_rng(0).normal(size=(4, 300)).astype(np.float32) * 5
    tokens, logprobs = greedy_rows(logits)
    expected = torch.log_softmax(torch.from_numpy(logits), dim=-1)
    assert tokens == expected.argmax(dim=-1).tolist()
    assert logprobs == pytest.approx([float(expected[i, t]) for i, t in enumerate(tokens)], abs=1e-5)


@pytest.mark.parametrize("params", [PARAMS, PARAMS[:1] * 4, PARAMS[2:4]])
def test_sample_rows_matches_sample_batch_for_every_option(params: list[SamplingParams]) -> None:
    rng = np.random.default_rng(1)
    prompt = [3, 4, 5]
    fast = [RowSampler(p, prompt) for p in params]
    slow = [RowSampler(p, prompt) for p in params]
    for _ in range(5):  # several steps: penalties and random state carry over
        logits = (rng.normal(size=(len(params), 200)) * 4).astype(np.float32)
        got = sample_rows(logits, fast)
        want = sample_batch(torch.from_numpy(logits.copy()), slow)
        assert [t.token_id for t in got] == [t.token_id for t in want]
        assert [t.logprob for t in got] == pytest.approx([t.logprob for t in want], abs=1e-5)
        assert [[i for i, _ in t.top_tokens] for t in got] == [[i for i, _ in t.top_tokens] for t in want]
