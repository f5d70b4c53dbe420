"""Choosing each row's next token from the batch's logits, with that row's own parameters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from llmops_generation.domain.model import SamplingParams, StepToken


class RowSampler:
    """One sequence's logits processing and random state.

    Each sampling row owns a torch.Generator seeded from the request, so a seeded request
    draws the same random numbers whatever else shares its batch.
    """

    def __init__(self, params: SamplingParams, prompt_ids: Sequence[int]) -> None:
        self.params = params
        self.generator: torch.Generator | None = None
        if params.do_sample:
            self.generator = torch.Generator().manual_seed(params.seed or 0)
        processors = LogitsProcessorList()
        if params.repetition_penalty:
            processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        if params.do_sample:
            if params.temperature:
                processors.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k:
                processors.append(TopKLogitsWarper(params.top_k))
            if params.top_p:
                processors.append(TopPLogitsWarper(params.top_p))
            if params.typical_p:
                processors.append(TypicalLogitsWarper(params.typical_p))
        self._processors = processors
        # The repetition penalty looks at the prompt too (as in transformers); the OpenAI-style
        # penalties only at what was generated.
        self._history: list[int] = list(prompt_ids) if params.repetition_penalty else []
        self._counts: Counter[int] = Counter()

    def process(self, logits: torch.Tensor) -> torch.Tensor:
        """Processed scores for one row ([vocab] float32)."""
        scores = logits.unsqueeze(0)
        if self._counts and (self.params.frequency_penalty or self.params.presence_penalty):
            ids = torch.tensor(list(self._counts), dtype=torch.long)
            counts = torch.tensor(list(self._counts.values()), dtype=scores.dtype)
            penalty = counts * (self.params.frequency_penalty or 0.0) + (self.params.presence_penalty or 0.0)
            scores = scores.clone()
            scores[0, ids] -= penalty
        if len(self._processors):
            history = cast(torch.LongTensor, torch.tensor([self._history], dtype=torch.long))
            scores = self._processors(history, cast(torch.FloatTensor, scores))
        return scores[0]

    def choose(self, scores: torch.Tensor) -> int:
        if self.generator is None:
            return int(scores.argmax())
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def record(self, token_id: int) -> None:
        if self.params.repetition_penalty:
            self._history.append(token_id)
        if self.params.frequency_penalty or self.params.presence_penalty:
            self._counts[token_id] += 1


def sample_batch(logits: torch.Tensor, samplers: Sequence[RowSampler]) -> list[StepToken]:
    """Next token for each row of `logits` ([batch, vocab]), in row order."""
    logits = logits.float()
    logprobs = torch.log_softmax(logits, dim=-1)
    # Plain greedy rows (the common case) share one argmax over the batch.
    greedy = logprobs.argmax(dim=-1).tolist()
    out: list[StepToken] = []
    for row, sampler in enumerate(samplers):
        if sampler.params.is_plain_greedy:
            token = greedy[row]
            row_logprobs = logprobs[row]
        else:
            scores = sampler.process(logits[row])
            token = sampler.choose(scores)
            row_logprobs = torch.log_softmax(scores, dim=-1)
        sampler.record(token)
        top: tuple[tuple[int, float], ...] = ()
        if sampler.params.top_n_tokens:
            values, ids = row_logprobs.topk(sampler.params.top_n_tokens)
            top = tuple(zip(ids.tolist(), values.tolist(), strict=True))
        out.append(StepToken(token_id=token, logprob=float(row_logprobs[token]), top_tokens=top))
    return out


def greedy_rows(logits: np.ndarray) -> tuple[list[int], list[float]]:
    """Each row's argmax and its log-probability, for float32 `logits` [n, vocab], in numpy."""
    tokens = logits.argmax(axis=1)
    best = logits[np.arange(len(logits)), tokens]
    lse = best + np.log(np.exp(logits - best[:, None]).sum(axis=1))
    return tokens.tolist(), (best - lse).tolist()


def sample_rows(logits: np.ndarray, samplers: Sequence[RowSampler]) -> list[StepToken]:
    """sample_batch for numpy logits ([batch, vocab] float32), as llama.cpp returns them.

    Plain greedy rows without top_n_tokens (the common case) take one vectorised numpy pass
    (argmax, logsumexp): no tensor per row and no full log-softmax. The others go through
    sample_batch, so every sampling option means what it means there.
    """
    fast = [i for i, s in enumerate(samplers) if s.params.is_plain_greedy and not s.params.top_n_tokens]
    out: dict[int, StepToken] = {}
    if fast:
        # All rows fast (the common case): the logits as they are, no gathered copy.
        tokens, logprobs = greedy_rows(logits if len(fast) == len(samplers) else logits[fast])
        out.update((i, StepToken(token_id=t, logprob=lp))
                   for i, t, lp in zip(fast, tokens, logprobs, strict=True))
    slow = [i for i in range(len(samplers)) if i not in out]
    if slow:
        chosen = sample_batch(torch.from_numpy(logits[slow]), [samplers[i] for i in slow])
        out.update(zip(slow, chosen, strict=True))
    return [out[i] for i in range(len(samplers))]
