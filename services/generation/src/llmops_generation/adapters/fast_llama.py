"""A lean forward pass for Llama-architecture models with a preallocated per-slot KV cache.

transformers spends most of a decode step of a small model (SmolLM2-135M: 30 layers of 576
wide) in per-module Python, mask building and DynamicCache concatenation, not in arithmetic.
This module takes the weights of an already loaded LlamaForCausalLM and runs the same maths
with few large calls: fused QKV and gate/up projections, torch's fused RMSNorm and
scaled_dot_product_attention, and one KV buffer per layer `[slots, kv_heads, capacity, head_dim]`
written in place. Each batch row owns a slot and holds its tokens from position 0 (no padding
in front); a decode step attends over the first `max(length)` positions with a length mask.

Formats: float32 and bfloat16 run F.linear in that dtype; "int8" keeps float32 activations and
runs every projection (and the tied output head) through fbgemm's dynamic int8 linear, the
kernel torch's `quantize_dynamic` uses, on weights quantised once per output channel.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

Linear = Callable[[torch.Tensor], torch.Tensor]

# Capacity grows in whole blocks, so a long sequence reallocates its cache rarely.
_BLOCK = 256


def unsupported_reason(model: Any) -> str | None:
    """Why `model` cannot run on this path (None: it can)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) != "llama":
        return f"model type {getattr(config, 'model_type', None)!r} is not llama"
    if type(model).__name__ != "LlamaForCausalLM":
        return f"{type(model).__name__} is not LlamaForCausalLM"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r} is not silu"
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "biased projections"
    if getattr(config, "pretraining_tp", 1) != 1:
        return "pretraining_tp != 1"
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    kind = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if kind == "dynamic":
        return "dynamic rope scaling depends on the sequence length"
    if any(not isinstance(m, torch.nn.Linear) for m in model.model.layers[0].self_attn.children()):
        return "projections are not plain Linear layers (quantised or wrapped)"
    return None


def _int8_linear(weight: torch.Tensor) -> Linear:
    """fbgemm dynamic int8 linear on `weight` ([out, in] float), per-output-channel scales."""
    weight = weight.detach().float().contiguous()
    scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-8).double()
    zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qweight = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
        packed = torch.ops.quantized.linear_prepack(qweight, None)
    op = torch.ops.quantized.linear_dynamic

    def linear(x: torch.Tensor) -> torch.Tensor:
        return op(x, packed, True)

    return linear


def _float_linear(weight: torch.Tensor) -> Linear:
    weight = weight.detach().contiguous()

    def linear(x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight)

    return linear


class _Layer:
    __slots__ = ("attn_norm", "down", "gate_up", "mlp_norm", "o", "qkv")

    def __init__(
        self, layer: Any, make: Callable[[torch.Tensor], Linear], dtype: torch.dtype, q_scale: float
    ) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.attn_norm = layer.input_layernorm.weight.detach().to(dtype)
        self.mlp_norm = layer.post_attention_layernorm.weight.detach().to(dtype)
        # The attention scale is folded into the query rows: exact when head_dim is a power of
        # 4 (SmolLM2: 64 -> x0.125), and one rounding otherwise, which float noise dwarfs.
        q = attn.q_proj.weight.detach().float() * q_scale
        qkv = torch.cat([q, attn.k_proj.weight.detach().float(), attn.v_proj.weight.detach().float()])
        self.qkv = make(qkv.to(dtype))
        self.o = make(attn.o_proj.weight)
        self.gate_up = make(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))
        self.down = make(mlp.down_proj.weight)


class FastLlama:
    """The model's maths and a KV cache of `slots` rows; rows are addressed by slot index.

    Not thread-safe: one decoder thread calls it (as with every ports.Decoder).
    """

    def __init__(self, model: Any, *, int8: bool = False, slots: int = 8, capacity: int = _BLOCK) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"fast decode path does not support this model: {reason}")
        config = model.config
        self.int8 = int8
        self.dtype: torch.dtype = torch.float32 if int8 else model.dtype
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // self.heads)
        self.hidden = int(config.hidden_size)
        self.eps = float(config.rms_norm_eps)
        self.max_positions = int(config.max_position_embeddings)
        make = _int8_linear if int8 else _float_linear
        scale = self.head_dim**-0.5
        self.embed = model.model.embed_tokens.weight.detach().to(self.dtype)
        self.layers = [_Layer(layer, make, self.dtype, scale) for layer in model.model.layers]
        self.norm = model.model.norm.weight.detach().to(self.dtype)
        self.head = make(model.lm_head.weight)
        self.cos, self.sin = self._rope_table(model)
        # [layers, 2 (key, value), slots, kv_heads, capacity, head_dim]: a decode step writes
        # each row's new key and value with one index_put, and keys[:B] merges B and kv_heads
        # into one batch dimension without a copy.
        self.kv = torch.empty(0)
        self._rows = torch.arange(0)
        self._allocate(slots, min(capacity, self.max_positions))

    def _rope_table(self, model: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sign-folded sin per position: rope(x) = x * cos + swap_halves(x) * sin."""
        # The model's own rotary module, so every static rope variant (llama3, linear, yarn...)
        # gives the table transformers would compute position by position.
        positions = torch.arange(self.max_positions).unsqueeze(0)
        probe = torch.zeros(1, dtype=torch.float32)
        with torch.inference_mode():
            cos, sin = model.model.rotary_emb(probe, positions)
        half = self.head_dim // 2
        sin = sin[0].clone()
        sin[:, :half] = -sin[:, :half]  # rotate_half(x) = cat(-x2, x1) = swap_halves(x) * (-1, +1)
        return cos[0].to(self.dtype).contiguous(), sin.to(self.dtype).contiguous()

    # -- cache -----------------------------------------------------------------------------

    @property
    def slots(self) -> int:
        return int(self.kv.shape[2])

    @property
    def capacity(self) -> int:
        return int(self.kv.shape[4])

    def _allocate(self, slots: int, capacity: int) -> None:
        kv = torch.zeros(
            (len(self.layers), 2, slots, self.kv_heads, capacity, self.head_dim), dtype=self.dtype
        )
        if self.kv.numel():
            s, t = min(slots, self.slots), min(capacity, self.capacity)
            kv[:, :, :s, :, :t] = self.kv[:, :, :s, :, :t]
        self.kv = kv
        self._rows = torch.arange(slots)

    def reserve(self, slots: int, length: int) -> None:
        """Makes room for `slots` rows of `length` tokens (reallocates only when it must)."""
        if length > self.max_positions:
            raise ValueError(
                f"sequence of {length} tokens exceeds the model's {self.max_positions} positions"
            )
        if slots <= self.slots and length <= self.capacity:
            return
        capacity = self.capacity
        if length > capacity:
            capacity = max(length, capacity * 3 // 2)
            capacity = min(-(-capacity // _BLOCK) * _BLOCK, self.max_positions)
        self._allocate(max(slots, self.slots), capacity)

    def move(self, source: int, target: int, length: int) -> None:
        """Copies slot `source`'s first `length` positions into slot `target`."""
        self.kv[:, :, target, :, :length] = self.kv[:, :, source, :, :length]

    def release(self) -> None:
        """Drops the cache (after a failed step or on close); a small one is allocated again."""
        self.kv = torch.empty(0)
        self._allocate(1, _BLOCK)

    # -- maths -----------------------------------------------------------------------------

    def _rope_(self, qk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
        """Rotary embedding in place on `qk` ([..., heads, head_dim])."""
        shape = qk.shape
        swapped = qk.unflatten(-1, (2, self.head_dim // 2)).flip(-2).reshape(shape)
        qk.mul_(cos).addcmul_(swapped, sin)

    def _mlp(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        h = F.rms_norm(x, (self.hidden,), layer.mlp_norm, self.eps)
        gate, up = layer.gate_up(h).chunk(2, dim=-1)
        return x.add_(layer.down(F.silu(gate).mul_(up)))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.rms_norm(x, (self.hidden,), self.norm, self.eps))

    def prefill(self, slot: int, ids: Sequence[int], *, all_logits: bool = False) -> torch.Tensor:
        """Runs one prompt into `slot` (positions 0..n-1); logits of the last token ([vocab]),
        or of every token ([n, vocab]) with `all_logits`."""
        n = len(ids)
        self.reserve(slot + 1, n)
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        x = F.embedding(torch.tensor(ids, dtype=torch.long), self.embed)  # [n, hidden]
        cos, sin = self.cos[:n].unsqueeze(1), self.sin[:n].unsqueeze(1)  # [n, 1, head_dim]
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, (self.hidden,), layer.attn_norm, self.eps)
            qkv = layer.qkv(h)  # [n, (heads + 2 kv_heads) * dim]
            self._rope_(qkv[:, : (heads + kv_heads) * dim].view(n, heads + kv_heads, dim), cos, sin)
            cache = self.kv[i, :, slot, :, :n]  # [2, kv_heads, n, dim]
            cache.copy_(qkv[:, heads * dim :].view(n, 2, kv_heads, dim).permute(1, 2, 0, 3))
            q = qkv[:, : heads * dim].view(n, heads, dim).transpose(0, 1)
            attn = F.scaled_dot_product_attention(
                q.unsqueeze(0), cache[0:1], cache[1:2], is_causal=True, scale=1.0, enable_gqa=True
            )
            x = x + layer.o(attn[0].transpose(0, 1).reshape(n, heads * dim))
            x = self._mlp(layer, x)
        return self._logits(x) if all_logits else self._logits(x[-1:])[0]

    def decode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """One token for each of the first B slots: `tokens` [B] at positions `lengths` [B].

        Row b's cache holds `lengths[b]` tokens; the new key and value go to that position.
        Returns logits [B, vocab].
        """
        b = tokens.shape[0]
        width = int(lengths.max()) + 1
        self.reserve(b, width)
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        group = heads // kv_heads
        rows = self._rows[:b]
        cos, sin = self.cos[lengths].unsqueeze(1), self.sin[lengths].unsqueeze(1)  # [B, 1, dim]
        # Additive mask: row b sees its positions 0..lengths[b].
        hidden = torch.arange(width).unsqueeze(0) > lengths.unsqueeze(1)
        bias = torch.zeros((b, 1, 1, width), dtype=self.dtype).masked_fill_(
            hidden.view(b, 1, 1, width), float("-inf")
        )
        x = F.embedding(tokens, self.embed)  # [B, hidden]
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, (self.hidden,), layer.attn_norm, self.eps)
            qkv = layer.qkv(h)
            self._rope_(qkv[:, : (heads + kv_heads) * dim].view(b, heads + kv_heads, dim), cos, sin)
            kv = self.kv[i]
            kv[:, rows, :, lengths] = qkv[:, heads * dim :].view(b, 2, kv_heads, dim)
            # Queries grouped per KV head (transformers' repeat_kv mapping): plain matmuls, no
            # K/V copies; for one query per row SDPA's CPU kernels cost more than the maths.
            q = qkv[:, : heads * dim].view(b, kv_heads, group, dim)
            scores = torch.matmul(q, kv[0, :b, :, :width].transpose(2, 3)).add_(bias)
            attn = torch.matmul(torch.softmax(scores, dim=-1), kv[1, :b, :, :width])
            x = x + layer.o(attn.view(b, heads * dim))
            x = self._mlp(layer, x)
        return self._logits(x)
