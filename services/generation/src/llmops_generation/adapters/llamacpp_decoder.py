"""ports.Decoder on llama.cpp, with LoRA rows on a transformers decoder made on first need.

Rows on the base weights run in llama.cpp: each holds a slot (llama.cpp sequence id), and one
llama_batch per step carries every running row's next token together with the whole prompts
of the rows joining, so concurrent requests share each forward pass (continuous batching).
Sampling is the transformers engine's own (adapters/sampling.py) on llama.cpp's logits, so
temperature, top_k/top_p/typical_p, the penalties, seeds and top_n_tokens mean the same on
both engines. Rows that name a LoRA adapter run on a float32 TransformersDecoder of the same
model in the same step; it is built when the first adapter loads, so a server that never
loads one never holds the model twice.

With `prefix_cache`, an ended row's slot keeps its KV cells and a joining prompt reuses the
longest prefix any free slot holds (adapters/llamacpp_slots.py): only the rest is prefilled,
at positions continuing from the reused length.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from llmops_generation.adapters.decoder import TransformersDecoder, with_prefill
from llmops_generation.adapters.llamacpp_model import Entry, LlamaCppModel
from llmops_generation.adapters.llamacpp_slots import SlotPool
from llmops_generation.adapters.llamacpp_weights import ServedWeights
from llmops_generation.adapters.sampling import RowSampler, sample_rows
from llmops_generation.domain.model import NewSequence, StepToken

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Row:
    seq_id: int
    slot: int
    sampler: RowSampler
    length: int  # tokens in its KV cells
    last: int  # the token it feeds next
    tokens: list[int]  # prompt and generated tokens; the first `length` are in its KV cells


class LlamaCppDecoder:
    """Implements ports.Decoder: base rows on `model`, adapter rows on a lazily built fallback."""

    engine = "llamacpp"

    def __init__(
        self,
        model: LlamaCppModel,
        eos_token_ids: frozenset[int],
        fallback: Callable[[], TransformersDecoder],
        *,
        weights: ServedWeights | None = None,
        prefix_cache: bool = True,
    ) -> None:
        self._model = model
        self._eos = eos_token_ids
        self._make_fallback = fallback
        self._fallback: TransformersDecoder | None = None
        self._rows: dict[int, _Row] = {}
        self._slots = SlotPool(model.slots, reuse=prefix_cache)
        self.weights = weights

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos

    @property
    def adapters(self) -> Mapping[str, Path]:
        return self._fallback.adapters if self._fallback else {}

    @property
    def decode_path(self) -> str:
        threads, threads_batch = self._model.threads
        w = self.weights
        if w is None:
            served = self._model.description
        elif w.served != w.file_type:
            served = f"{w.served} copy of the file's {w.file_type}"
        else:
            served = f"the file's {w.file_type}"
        repack = "" if w is None or w.extra_buffers else "no repacked or AMX weights; "
        return (
            f"llama.cpp ({served}; {threads}/{threads_batch} threads; {repack}"
            "LoRA rows on transformers float32)"
        )

    @property
    def prefix_cache(self) -> bool:
        """Whether joining prompts reuse the KV cells of ended sequences that share a prefix."""
        return self._slots.reuse

    @property
    def batch_size(self) -> int:
        return len(self._rows) + (self._fallback.batch_size if self._fallback else 0)

    # -- ports.Decoder ---------------------------------------------------------------------

    def step(self, admit: Sequence[NewSequence], evict: Collection[int]) -> Mapping[int, StepToken]:
        for seq_id in evict:
            row = self._rows.pop(seq_id, None)
            if row is None:
                continue
            if self._slots.reuse:
                self._slots.release(row.slot, row.tokens[: row.length])
            else:
                self._model.remove(row.slot)
                self._slots.release(row.slot)
        base = [s for s in admit if s.adapter is None]
        out: dict[int, StepToken] = {}
        if self._rows or base:
            with torch.inference_mode():
                out.update(self._step_base(base))
        lora = [s for s in admit if s.adapter is not None]
        if lora and self._fallback is None:
            raise ValueError("no LoRA adapter is loaded on this model")
        if self._fallback is not None and (lora or self._fallback.batch_size):
            out.update(self._fallback.step(lora, evict))
        return out

    def reset(self) -> None:
        self._rows.clear()
        self._model.clear()
        self._slots.clear()
        if self._fallback is not None:
            self._fallback.reset()

    def load_adapter(self, name: str, path: Path) -> None:
        if self._fallback is None:
            self._fallback = self._make_fallback()
            log.info("transformers decoder built for LoRA rows", extra={"adapter_id": name})
        self._fallback.load_adapter(name, path)

    def unload_adapter(self, name: str) -> None:
        if self._fallback is None:
            raise KeyError(name)
        self._fallback.unload_adapter(name)

    def close(self) -> None:
        self._rows.clear()
        self._model.close()
        if self._fallback is not None:
            self._fallback.close()
            self._fallback = None

    # -- internals -------------------------------------------------------------------------

    def _step_base(self, admit: Sequence[NewSequence]) -> dict[int, StepToken]:
        if len(admit) > len(self._slots):
            raise RuntimeError(f"{len(admit)} sequences join but only {len(self._slots)} slots are free")
        running = list(self._rows.values())
        entries = [Entry(r.last, r.length, r.slot, True) for r in running]
        joining: list[tuple[NewSequence, _Row, int]] = []
        for seq in admit:
            prompt = seq.input_ids
            if len(prompt) >= self._model.ctx_per_slot:
                raise ValueError(
                    f"prompt of {len(prompt)} tokens does not fit a slot of {self._model.ctx_per_slot}"
                )
            # Every prompt token's logits (prefill logprobs) means computing every one.
            claim = self._slots.acquire(prompt, reuse=not seq.want_prefill_logprobs)
            keep = claim.keep
            if claim.held > keep and not self._model.remove(claim.slot, keep):
                # This memory cannot drop a tail (llama.cpp refuses): start the slot afresh.
                self._model.remove(claim.slot)
                keep = 0
            row = _Row(seq.seq_id, claim.slot, RowSampler(seq.sampling, prompt), 0, 0, list(prompt))
            joining.append((seq, row, keep))
            last = len(prompt) - 1
            # Positions continue from the reused length: cells 0..keep-1 already hold the prefix.
            entries.extend(
                Entry(prompt[pos], pos, row.slot, seq.want_prefill_logprobs or pos == last)
                for pos in range(keep, len(prompt))
            )
        logits = self._model.decode(entries)
        out: dict[int, StepToken] = {}
        n = len(running)
        if running:
            chosen = sample_rows(logits[:n], [r.sampler for r in running])
            for row, token in zip(running, chosen, strict=True):
                row.length += 1
                row.last = token.token_id
                row.tokens.append(token.token_id)
                out[row.seq_id] = token
        at = n
        for seq, row, keep in joining:
            width = len(seq.input_ids) if seq.want_prefill_logprobs else 1
            rows = logits[at : at + width]
            at += width
            token = sample_rows(rows[-1:], [row.sampler])[0]
            if seq.want_prefill_logprobs:
                ids = torch.tensor(seq.input_ids, dtype=torch.long)
                prompt_logprobs = torch.log_softmax(torch.from_numpy(rows), dim=-1)
                token = with_prefill(token, prompt_logprobs, ids, len(ids))
            row.length = len(seq.input_ids)
            row.last = token.token_id
            row.tokens.append(token.token_id)
            self._rows[row.seq_id] = row
            out[row.seq_id] = replace(token, reused_prompt_tokens=keep)
        return out

