"""The running batch on a transformers causal LM: a left-padded KV cache that sequences join and leave.

Layout: every row of the batch is left-padded to the same cache length T; `mask` ([B, T]) marks
real tokens, `next_pos` holds each row's next position id (its own token count, so padding
never shifts positions) and `last` the token each row feeds next. A joining group is
prefilled on its own and then concatenated, the shorter side padded on the left; a leaving
row is dropped with index_select and columns that became padding in every row are trimmed.
Requests for different LoRA adapters share the batch: PEFT applies each row's own adapter
(`adapter_names`), and rows without one run the base weights.
"""

from __future__ import annotations

import gc
import inspect
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from llmops_generation.adapters.sampling import RowSampler, sample_batch
from llmops_generation.domain.model import NewSequence, StepToken

log = logging.getLogger(__name__)

_BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


@dataclass(eq=False)
class _Row:
    seq_id: int
    adapter: str | None
    sampler: RowSampler


@dataclass
class _Batch:
    rows: list[_Row]
    cache: DynamicCache
    mask: torch.Tensor  # [B, T] long, 1 = real token
    next_pos: torch.Tensor  # [B] long
    last: torch.Tensor  # [B] long


def _layers(cache: DynamicCache) -> list[DynamicLayer]:
    # check_batchable guaranteed every layer is a DynamicLayer.
    return cast(list[DynamicLayer], cache.layers)


def _kv(layer: DynamicLayer) -> tuple[torch.Tensor, torch.Tensor]:
    assert layer.keys is not None and layer.values is not None
    return layer.keys, layer.values


def check_batchable(model: PreTrainedModel) -> None:
    """The batch surgery below needs one full-attention DynamicLayer per decoder layer."""
    cache = DynamicCache(config=model.config)
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        kinds = sorted({type(layer).__name__ for layer in cache.layers})
        raise ValueError(f"unsupported cache layout for continuous batching: {kinds}")


class TransformersDecoder:
    """Implements ports.Decoder for a transformers causal LM (optionally with PEFT adapters)."""

    def __init__(
        self,
        model: PreTrainedModel,
        eos_token_ids: frozenset[int],
        pad_token_id: int,
        *,
        quantized: bool = False,
        decode_path: str = "transformers",
    ) -> None:
        check_batchable(model)
        self._quantized = quantized
        self._decode_path = decode_path
        self._base: Any = model
        self._peft: Any = None
        self._adapters: dict[str, Path] = {}
        self._eos = eos_token_ids
        self._pad = pad_token_id
        self._batch: _Batch | None = None
        params = inspect.signature(model.forward).parameters
        # transformers 5 renamed past_key_values to cache (the old name is deprecated).
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos

    @property
    def adapters(self) -> Mapping[str, Path]:
        return dict(self._adapters)

    @property
    def batch_size(self) -> int:
        return len(self._batch.rows) if self._batch else 0

    @property
    def decode_path(self) -> str:
        return self._decode_path

    # -- ports.Decoder ---------------------------------------------------------------------

    def step(self, admit: Sequence[NewSequence], evict: Collection[int]) -> Mapping[int, StepToken]:
        with torch.inference_mode():
            if evict:
                self._evict(evict)
            out: dict[int, StepToken] = {}
            if self._batch is not None:
                out.update(self._decode(self._batch))
            if admit:
                joined, tokens = self._prefill(admit)
                out.update(tokens)
                self._batch = joined if self._batch is None else _merge(self._batch, joined)
            return out

    def reset(self) -> None:
        self._batch = None

    def load_adapter(self, name: str, path: Path) -> None:
        from peft import PeftModel

        if name in self._adapters:
            raise ValueError(f"adapter {name!r} is already loaded")
        if self._quantized:
            # PEFT wraps float nn.Linear layers; int8 dynamic layers are a different module.
            raise ValueError("LoRA adapters need a float model; this model runs in int8 (load it as float32)")
        if self._peft is None:
            self._peft = PeftModel.from_pretrained(
                self._base, str(path), adapter_name=name, is_trainable=False
            )
        else:
            self._peft.load_adapter(str(path), adapter_name=name, is_trainable=False)
        self._peft.eval()
        self._adapters[name] = path

    def unload_adapter(self, name: str) -> None:
        if name not in self._adapters:
            raise KeyError(name)
        self._peft.delete_adapter(name)
        del self._adapters[name]
        gc.collect()

    def close(self) -> None:
        self._batch = None
        self._peft = None
        self._base = None
        gc.collect()

    # -- internals -------------------------------------------------------------------------

    def _forward(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: DynamicCache,
        adapters: Sequence[str | None],
        logits_to_keep: int,
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "position_ids": positions,
            self._cache_kw: cache,
            "use_cache": True,
            "logits_to_keep": logits_to_keep,
        }
        if self._adapters:
            # With any adapter loaded every call goes through PEFT with explicit per-row names:
            # calling the base model directly would apply the PEFT-active adapter to all rows.
            names = [a if a in self._adapters else _BASE for a in adapters]
            return self._peft(**kwargs, adapter_names=names).logits
        return self._base(**kwargs).logits

    def _decode(self, batch: _Batch) -> dict[int, StepToken]:
        ones = torch.ones((len(batch.rows), 1), dtype=batch.mask.dtype)
        batch.mask = torch.cat([batch.mask, ones], dim=1)
        logits = self._forward(
            batch.last.unsqueeze(1),
            batch.mask,
            batch.next_pos.unsqueeze(1),
            batch.cache,
            [r.adapter for r in batch.rows],
            1,
        )
        batch.next_pos = batch.next_pos + 1
        tokens = sample_batch(logits[:, -1], [r.sampler for r in batch.rows])
        batch.last = torch.tensor([t.token_id for t in tokens], dtype=torch.long)
        return {r.seq_id: t for r, t in zip(batch.rows, tokens, strict=True)}

    def _prefill(self, admit: Sequence[NewSequence]) -> tuple[_Batch, dict[int, StepToken]]:
        width = max(len(s.input_ids) for s in admit)
        ids = torch.full((len(admit), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(admit), width), dtype=torch.long)
        for i, s in enumerate(admit):
            ids[i, width - len(s.input_ids) :] = torch.tensor(s.input_ids, dtype=torch.long)
            mask[i, width - len(s.input_ids) :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        want_prefill = any(s.want_prefill_logprobs for s in admit)
        cache = DynamicCache(config=self._base.config)
        logits = self._forward(
            ids, mask, positions, cache, [s.adapter for s in admit], 0 if want_prefill else 1
        )
        rows = [_Row(s.seq_id, s.adapter, RowSampler(s.sampling, s.input_ids)) for s in admit]
        tokens = sample_batch(logits[:, -1], [r.sampler for r in rows])
        if want_prefill:
            all_logprobs = torch.log_softmax(logits.float(), dim=-1)
            for i, s in enumerate(admit):
                if s.want_prefill_logprobs:
                    tokens[i] = with_prefill(tokens[i], all_logprobs[i], ids[i], len(s.input_ids))
        batch = _Batch(
            rows=rows,
            cache=cache,
            mask=mask,
            next_pos=mask.sum(dim=1),
            last=torch.tensor([t.token_id for t in tokens], dtype=torch.long),
        )
        return batch, {r.seq_id: t for r, t in zip(rows, tokens, strict=True)}

    def _evict(self, evict: Collection[int]) -> None:
        batch = self._batch
        if batch is None:
            return
        keep = [i for i, r in enumerate(batch.rows) if r.seq_id not in evict]
        if len(keep) == len(batch.rows):
            return
        if not keep:
            self._batch = None
            return
        index = torch.tensor(keep, dtype=torch.long)
        mask = batch.mask.index_select(0, index)
        # Columns that are padding in every remaining row carry nothing: drop them.
        first = int(mask.any(dim=0).nonzero()[0])
        for layer in _layers(batch.cache):
            keys, values = _kv(layer)
            layer.keys = keys.index_select(0, index)[:, :, first:]
            layer.values = values.index_select(0, index)[:, :, first:]
        batch.rows = [batch.rows[i] for i in keep]
        batch.mask = mask[:, first:]
        batch.next_pos = batch.next_pos.index_select(0, index)
        batch.last = batch.last.index_select(0, index)


def with_prefill(token: StepToken, logprobs: torch.Tensor, ids: torch.Tensor, length: int) -> StepToken:
    """Adds each prompt token's logprob given the tokens before it (TGI's `prefill` details)."""
    width = ids.shape[0]
    start = width - length
    if length > 1:
        predicted = logprobs[start : width - 1].gather(1, ids[start + 1 :].unsqueeze(1)).squeeze(1)
        values: list[float | None] = [None, *predicted.tolist()]
    else:
        values = [None]
    return StepToken(
        token_id=token.token_id,
        logprob=token.logprob,
        top_tokens=token.top_tokens,
        prefill_logprobs=tuple(values),
    )


def _left_pad(t: torch.Tensor, amount: int, dim: int) -> torch.Tensor:
    if amount == 0:
        return t
    # F.pad lists (left, right) pairs from the last dimension backwards.
    pads = [0, 0] * (t.dim() - 1 - dim % t.dim()) + [amount, 0]
    return F.pad(t, pads)


def _merge(old: _Batch, new: _Batch) -> _Batch:
    width = max(old.mask.shape[1], new.mask.shape[1])
    pad_old, pad_new = width - old.mask.shape[1], width - new.mask.shape[1]
    for a, b in zip(_layers(old.cache), _layers(new.cache), strict=True):
        (ak, av), (bk, bv) = _kv(a), _kv(b)
        a.keys = torch.cat([_left_pad(ak, pad_old, 2), _left_pad(bk, pad_new, 2)], dim=0)
        a.values = torch.cat([_left_pad(av, pad_old, 2), _left_pad(bv, pad_new, 2)], dim=0)
    return _Batch(
        rows=old.rows + new.rows,
        cache=old.cache,
        mask=torch.cat([_left_pad(old.mask, pad_old, 1), _left_pad(new.mask, pad_new, 1)], dim=0),
        next_pos=torch.cat([old.next_pos, new.next_pos]),
        last=torch.cat([old.last, new.last]),
    )
