"""ports.Decoder on llama.cpp, with LoRA rows on a transformers decoder made on first need.

Rows on the base weights run in llama.cpp: each holds a slot (llama.cpp sequence id), and one
llama_batch per step carries every running row's next token together with the whole prompts
of the rows joining, so concurrent requests share each forward pass (continuous batching).
Sampling is the transformers engine's own (adapters/sampling.py) on llama.cpp's logits, so
temperature, top_k/top_p/typical_p, the penalties, seeds and top_n_tokens mean the same on
both engines. Rows that name a LoRA adapter run on a float32 TransformersDecoder of the same
model in the same step; it is built when the first adapter loads, so a server that never
loads one never holds the model twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from llmops_generation.adapters.decoder import TransformersDecoder, with_prefill
from llmops_generation.adapters.llamacpp_model import Entry, LlamaCppModel
from llmops_generation.adapters.sampling import RowSampler, sample_batch
from llmops_generation.domain.model import NewSequence, StepToken

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Row:
    seq_id: int
    slot: int
    sampler: RowSampler
    length: int  # tokens in its KV cells
    last: int  # the token it feeds next


class LlamaCppDecoder:
    """Implements ports.Decoder: base rows on `model`, adapter rows on a lazily built fallback."""

    engine = "llamacpp"

    def __init__(
        self,
        model: LlamaCppModel,
        eos_token_ids: frozenset[int],
        fallback: Callable[[], TransformersDecoder],
        *,
        quant: str = "gguf",
    ) -> None:
        self._model = model
        self._eos = eos_token_ids
        self._make_fallback = fallback
        self._fallback: TransformersDecoder | None = None
        self._rows: dict[int, _Row] = {}
        self._free = list(range(model.slots - 1, -1, -1))
        self._quant = quant

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos

    @property
    def adapters(self) -> Mapping[str, Path]:
        return self._fallback.adapters if self._fallback else {}

    @property
    def decode_path(self) -> str:
        threads, threads_batch = self._model.threads
        return (
            f"llama.cpp ({self._quant}; {threads}/{threads_batch} threads; "
            "LoRA rows on transformers float32)"
        )

    @property
    def batch_size(self) -> int:
        return len(self._rows) + (self._fallback.batch_size if self._fallback else 0)

    # -- ports.Decoder ---------------------------------------------------------------------

    def step(self, admit: Sequence[NewSequence], evict: Collection[int]) -> Mapping[int, StepToken]:
        for seq_id in evict:
            row = self._rows.pop(seq_id, None)
            if row is not None:
                self._model.remove(row.slot)
                self._free.append(row.slot)
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
        self._free = list(range(self._model.slots - 1, -1, -1))
        self._model.clear()
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
        if len(admit) > len(self._free):
            raise RuntimeError(f"{len(admit)} sequences join but only {len(self._free)} slots are free")
        running = list(self._rows.values())
        entries = [Entry(r.last, r.length, r.slot, True) for r in running]
        joining: list[tuple[NewSequence, _Row]] = []
        for seq in admit:
            if len(seq.input_ids) >= self._model.ctx_per_slot:
                raise ValueError(
                    f"prompt of {len(seq.input_ids)} tokens does not fit a slot of {self._model.ctx_per_slot}"
                )
            row = _Row(seq.seq_id, self._free.pop(), RowSampler(seq.sampling, seq.input_ids), 0, 0)
            joining.append((seq, row))
            last = len(seq.input_ids) - 1
            entries.extend(
                Entry(tok, pos, row.slot, seq.want_prefill_logprobs or pos == last)
                for pos, tok in enumerate(seq.input_ids)
            )
        logits = torch.from_numpy(self._model.decode(entries))
        out: dict[int, StepToken] = {}
        n = len(running)
        if running:
            chosen = sample_batch(logits[:n], [r.sampler for r in running])
            for row, token in zip(running, chosen, strict=True):
                row.length += 1
                row.last = token.token_id
                out[row.seq_id] = token
        at = n
        for seq, row in joining:
            width = len(seq.input_ids) if seq.want_prefill_logprobs else 1
            rows = logits[at : at + width]
            at += width
            token = sample_batch(rows[-1:], [row.sampler])[0]
            if seq.want_prefill_logprobs:
                ids = torch.tensor(seq.input_ids, dtype=torch.long)
                token = with_prefill(token, torch.log_softmax(rows.float(), dim=-1), ids, len(ids))
            row.length = len(seq.input_ids)
            row.last = token.token_id
            self._rows[row.seq_id] = row
            out[row.seq_id] = token
        return out

