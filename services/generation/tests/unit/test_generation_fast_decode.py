"""The fast Llama decode path against the transformers path, on a tiny random Llama (float32).

The transformers decoder is the reference: for the same prompt the fast path must choose the
same greedy tokens, whether a row runs alone, joins a running batch or sees others leave, and
across KV-cache growth. LoRA rows stay on transformers inside the same decoder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from llmops_generation.adapters.decoder import TransformersDecoder
from llmops_generation.adapters.fast_decoder import FastDecoder
from llmops_generation.adapters.fast_llama import FastLlama, unsupported_reason
from llmops_generation.adapters.loader import fast_engine
from llmops_generation.domain.model import NewSequence, SamplingParams
from llmops_generation.ports import Decoder

pytestmark = pytest.mark.unit

EOS = 1
PROMPTS = {1: [5, 6, 7, 8, 9, 10, 11], 2: [20, 21], 3: [30, 31, 32, 33], 4: [40]}


@pytest.fixture(scope="module")
def tiny_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,  # head_dim 16: the folded attention scale (1/4) is exact
        num_key_value_heads=2,
        max_position_embeddings=96,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


def seq(seq_id: int, ids: list[int], adapter: str | None = None, details: bool = False) -> NewSequence:
    return NewSequence(seq_id, tuple(ids), SamplingParams(), adapter, details)


def fast(model: LlamaForCausalLM, **kwargs: object) -> FastDecoder:
    return FastDecoder(FastLlama(model, **kwargs), TransformersDecoder(model, frozenset({EOS}), 0))  # type: ignore[arg-type]


def run_alone(decoder: Decoder, ids: list[int], steps: int, seq_id: int = 9) -> list[int]:
    out = [decoder.step([seq(seq_id, ids)], [])[seq_id].token_id]
    out += [decoder.step([], [])[seq_id].token_id for _ in range(steps - 1)]
    decoder.step([], [seq_id])
    return out


@pytest.fixture(scope="module")
def reference(tiny_model) -> dict[int, list[int]]:
    """Each prompt's 12 greedy tokens on the transformers path, alone."""
    decoder = TransformersDecoder(tiny_model, frozenset({EOS}), 0)
    return {i: run_alone(decoder, ids, 12) for i, ids in PROMPTS.items()}


def test_same_greedy_tokens_and_logprobs_as_transformers(tiny_model, reference) -> None:
    decoder = fast(tiny_model)
    assert isinstance(decoder, Decoder)
    assert decoder.decode_path == "fast (float32; LoRA rows on transformers)"
    for i, ids in PROMPTS.items():
        assert run_alone(decoder, ids, 12) == reference[i]
    slow = TransformersDecoder(tiny_model, frozenset({EOS}), 0)
    want = slow.step([seq(1, PROMPTS[1], details=True)], [])[1]
    got = decoder.step([seq(1, PROMPTS[1], details=True)], [])[1]
    assert got.token_id == want.token_id
    assert got.logprob == pytest.approx(want.logprob, abs=1e-4)
    assert got.prefill_logprobs is not None and want.prefill_logprobs is not None
    assert got.prefill_logprobs[0] is None
    assert got.prefill_logprobs[1:] == pytest.approx(want.prefill_logprobs[1:], abs=1e-4)


def test_rows_joining_and_leaving_keep_their_tokens(tiny_model, reference) -> None:
    decoder = fast(tiny_model)
    got: dict[int, list[int]] = {i: [] for i in PROMPTS}

    def record(out) -> None:
        for i, token in out.items():
            got[i].append(token.token_id)

    record(decoder.step([seq(1, PROMPTS[1]), seq(2, PROMPTS[2])], []))
    record(decoder.step([], []))
    record(decoder.step([seq(3, PROMPTS[3])], []))  # joins a batch of two
    for _ in range(3):
        record(decoder.step([], []))
    record(decoder.step([seq(4, PROMPTS[4])], [2]))  # 2 leaves from the middle as 4 joins
    assert decoder.batch_size == 3
    while any(len(got[i]) < 12 for i in (1, 3, 4)):
        done = [i for i in (1, 3, 4) if len(got[i]) >= 12 and i in decoder_rows(decoder)]
        record(decoder.step([], done))
    for i in (1, 3, 4):
        assert got[i][:12] == reference[i]
    assert got[2] == reference[2][: len(got[2])]
    decoder.step([], [1, 3, 4])
    assert decoder.batch_size == 0


def decoder_rows(decoder: FastDecoder) -> set[int]:
    return {row.seq_id for row in decoder._rows}


def test_cache_grows_past_its_first_capacity_and_stops_at_the_model_limit(tiny_model) -> None:
    small = fast(tiny_model, slots=1, capacity=4)
    roomy = TransformersDecoder(tiny_model, frozenset({EOS}), 0)
    # 7 prompt tokens + 40 generated: the cache reallocates (to the model's 96 positions).
    assert run_alone(small, PROMPTS[1], 40) == run_alone(roomy, PROMPTS[1], 40)
    engine = FastLlama(tiny_model)
    assert engine.capacity == 96  # a block of 256, capped at max_position_embeddings
    with pytest.raises(ValueError, match="97 tokens exceeds the model's 96 positions"):
        engine.prefill(0, [5] * 97)


def test_lora_rows_run_on_transformers_in_the_same_step(tiny_model, tmp_path: Path, reference) -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    donor = LlamaForCausalLM(tiny_model.config)
    donor.load_state_dict(tiny_model.state_dict())
    lora = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(donor, lora).save_pretrained(tmp_path / "lora")

    model = LlamaForCausalLM(tiny_model.config)
    model.load_state_dict(tiny_model.state_dict())
    model.eval()
    expected = TransformersDecoder(model, frozenset({EOS}), 0)
    expected.load_adapter("v2", tmp_path / "lora")
    lora_tokens = run_alone_adapter(expected, PROMPTS[1], 6)

    copy = LlamaForCausalLM(tiny_model.config)
    copy.load_state_dict(tiny_model.state_dict())
    decoder = fast(copy.eval())
    decoder.load_adapter("v2", tmp_path / "lora")
    assert set(decoder.adapters) == {"v2"}
    out = decoder.step([seq(1, PROMPTS[1]), seq(2, PROMPTS[1], adapter="v2")], [])
    rows = {1: [out[1].token_id], 2: [out[2].token_id]}
    for _ in range(5):
        step = decoder.step([], [])
        rows[1].append(step[1].token_id)
        rows[2].append(step[2].token_id)
    assert rows[1] == reference[1][:6]  # the base row is not touched by the adapter
    assert rows[2] == lora_tokens
    assert rows[2] != rows[1]
    decoder.step([], [1, 2])
    assert decoder.batch_size == 0
    decoder.unload_adapter("v2")
    assert run_alone(decoder, PROMPTS[1], 6) == reference[1][:6]


def run_alone_adapter(decoder: TransformersDecoder, ids: list[int], steps: int) -> list[int]:
    out = [decoder.step([seq(9, ids, adapter="v2")], [])[9].token_id]
    return out + [decoder.step([], [])[9].token_id for _ in range(steps - 1)]


def test_int8_logits_stay_close_to_float32(tiny_model) -> None:
    exact, int8 = FastLlama(tiny_model), FastLlama(tiny_model, int8=True)
    assert int8.int8 and int8.dtype == torch.float32
    with torch.inference_mode():
        want = exact.prefill(0, PROMPTS[1], all_logits=True)
        got = int8.prefill(0, PROMPTS[1], all_logits=True)
        step_want = exact.decode(torch.tensor([3]), torch.tensor([7]))
        step_got = int8.decode(torch.tensor([3]), torch.tensor([7]))
    spread = float(want.std())
    assert float((got - want).abs().max()) < 0.1 * spread
    assert float((step_got - step_want).abs().max()) < 0.1 * spread


def test_reset_forgets_the_batch(tiny_model, reference) -> None:
    decoder = fast(tiny_model)
    decoder.step([seq(1, PROMPTS[1]), seq(2, PROMPTS[2])], [])
    decoder.reset()
    assert decoder.batch_size == 0
    assert decoder.step([], []) == {}
    assert run_alone(decoder, PROMPTS[3], 12) == reference[3]


def test_loader_choice_and_unsupported_models(tiny_model) -> None:
    engine, path = fast_engine(tiny_model, int8=False, enabled=True)
    assert isinstance(engine, FastLlama) and path == ""
    assert fast_engine(tiny_model, int8=False, enabled=False) == (
        None,
        "transformers (LLMOPS_GENERATION_FAST_DECODE=false)",
    )
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    assert fast_engine(gpt2, int8=False, enabled=True) == (
        None,
        "transformers (fast path unsupported: model type 'gpt2' is not llama)",
    )
    biased = LlamaForCausalLM(LlamaConfig(**{**tiny_model.config.to_dict(), "attention_bias": True}))
    assert unsupported_reason(biased) == "biased projections"
    with pytest.raises(ValueError, match="fast decode path does not support this model: biased"):
        FastLlama(biased)
