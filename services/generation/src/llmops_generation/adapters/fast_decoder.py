"""ports.Decoder on the fast Llama path, with LoRA rows on the transformers decoder beside it.

Rows on the base weights live in FastLlama's per-slot KV cache: row i of the batch is slot i,
so slots 0..B-1 are always the running rows. A joining sequence is prefilled alone into the
next free slot (no padding, no concatenation); a leaving row's slot is filled by moving the
rows after it down, which copies only their used positions. Rows that ask for a LoRA adapter
run on the wrapped TransformersDecoder (PEFT's per-row adapters) in the same step, so
run-time adapter loading keeps working; the two halves share nothing but the weights.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from llmops_generation.adapters.decoder import TransformersDecoder, with_prefill
from llmops_generation.adapters.fast_llama import FastLlama
from llmops_generation.adapters.sampling import RowSampler, sample_batch
from llmops_generation.domain.model import NewSequence, StepToken


@dataclass(eq=False)
class _Row:
    seq_id: int
    sampler: RowSampler
    length: int  # tokens in its cache slot
    last: int  # the token it feeds next


class FastDecoder:
    """Implements ports.Decoder: base rows on `engine`, adapter rows on `fallback`."""

    def __init__(self, engine: FastLlama, fallback: TransformersDecoder) -> None:
        self._engine = engine
        self._fallback = fallback
        self._rows: list[_Row] = []

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._fallback.eos_token_ids

    @property
    def adapters(self) -> Mapping[str, Path]:
        return self._fallback.adapters

    @property
    def decode_path(self) -> str:
        fmt = "int8" if self._engine.int8 else str(self._engine.dtype).removeprefix("torch.")
        return f"fast ({fmt}; LoRA rows on transformers)"

    @property
    def batch_size(self) -> int:
        return len(self._rows) + self._fallback.batch_size

    def step(self, admit: Sequence[NewSequence], evict: Collection[int]) -> Mapping[int, StepToken]:
        out: dict[int, StepToken] = {}
        with torch.inference_mode():
            if evict:
                self._evict(evict)
            if self._rows:
                out.update(self._decode())
            for seq in admit:
                if seq.adapter is None:
                    out[seq.seq_id] = self._prefill(seq)
        lora = [s for s in admit if s.adapter is not None]
        if lora or self._fallback.batch_size:
            out.update(self._fallback.step(lora, evict))
        return out

    def reset(self) -> None:
        self._rows = []
        self._engine.release()
        self._fallback.reset()

    def load_adapter(self, name: str, path: Path) -> None:
        self._fallback.load_adapter(name, path)

    def unload_adapter(self, name: str) -> None:
        self._fallback.unload_adapter(name)

    def close(self) -> None:
        self._rows = []
        self._engine.release()
        self._fallback.close()

    # -- internals -------------------------------------------------------------------------

    def _decode(self) -> dict[int, StepToken]:
        rows = self._rows
        tokens = torch.tensor([r.last for r in rows], dtype=torch.long)
        lengths = torch.tensor([r.length for r in rows], dtype=torch.long)
        logits = self._engine.decode(tokens, lengths)
        chosen = sample_batch(logits, [r.sampler for r in rows])
        for row, token in zip(rows, chosen, strict=True):
            row.length += 1
            row.last = token.token_id
        return {r.seq_id: t for r, t in zip(rows, chosen, strict=True)}

    def _prefill(self, seq: NewSequence) -> StepToken:
        slot = len(self._rows)
        want = seq.want_prefill_logprobs
        logits = self._engine.prefill(slot, seq.input_ids, all_logits=want)
        sampler = RowSampler(seq.sampling, seq.input_ids)
        token = sample_batch((logits[-1] if want else logits).unsqueeze(0), [sampler])[0]
        if want:
            ids = torch.tensor(seq.input_ids, dtype=torch.long)
            token = with_prefill(token, torch.log_softmax(logits.float(), dim=-1), ids, len(ids))
        self._rows.append(_Row(seq.seq_id, sampler, len(seq.input_ids), token.token_id))
        return token

    def _evict(self, evict: Collection[int]) -> None:
        kept: list[_Row] = []
        for slot, row in enumerate(self._rows):
            if row.seq_id in evict:
                continue
            if slot != len(kept):
                # Ascending order: the target slot was vacated before this row moves into it.
                self._engine.move(slot, len(kept), row.length)
            kept.append(row)
        self._rows = kept
