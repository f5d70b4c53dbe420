"""The KV-cache batch surgery (join, pad, evict) and per-row sampling, on a tiny random Llama.

Real transformers code, random weights, no files: in float32 a sequence's tokens must not
depend on what else shares its batch or when it joined.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llmops_generation.adapters.decoder import TransformersDecoder
from llmops_generation.adapters.sampling import RowSampler, sample_batch
from llmops_generation.domain.model import NewSequence, SamplingParams

pytestmark = pytest.mark.unit

EOS = 1  # never produced in practice by these short runs; the decoder only reports it


@pytest.fixture(scope="module")
def tiny_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


def seq(seq_id: int, ids: list[int], adapter: str | None = None, **sampling: object) -> NewSequence:
    return NewSequence(seq_id, tuple(ids), SamplingParams(**sampling), adapter, False)  # type: ignore[arg-type]


PROMPTS = {1: [5, 6, 7, 8, 9, 10, 11], 2: [20, 21], 3: [30, 31, 32, 33], 4: [40]}


def alone(model: LlamaForCausalLM, ids: list[int], steps: int, **sampling: object) -> list[int]:
    decoder = TransformersDecoder(model, frozenset({EOS}), 0)
    out = [decoder.step([seq(1, ids, **sampling)], [])[1].token_id]
    out += [decoder.step([], [])[1].token_id for _ in range(steps - 1)]
    return out


def test_joining_and_leaving_never_changes_a_sequence(tiny_model) -> None:
    expected = {i: alone(tiny_model, ids, 10) for i, ids in PROMPTS.items()}
    decoder = TransformersDecoder(tiny_model, frozenset({EOS}), 0)
    got: dict[int, list[int]] = {i: [] for i in PROMPTS}

    def record(out) -> None:
        for i, token in out.items():
            got[i].append(token.token_id)

    record(decoder.step([seq(1, PROMPTS[1]), seq(2, PROMPTS[2])], []))  # two, left-padded
    for _ in range(3):
        record(decoder.step([], []))
    record(decoder.step([seq(3, PROMPTS[3])], []))  # joins a running batch (shorter cache)
    for _ in range(5):
        record(decoder.step([], []))
    # 2 has its 10 tokens and leaves in the very step that 4 (a one-token prompt) joins.
    record(decoder.step([seq(4, PROMPTS[4])], [2]))
    assert decoder.batch_size == 3
    while any(len(got[i]) < 10 for i in (1, 3, 4)):
        done = [i for i in (1, 3, 4) if len(got[i]) >= 10]
        record(decoder.step([], done))
    for i in PROMPTS:
        assert got[i][:10] == expected[i], i


def test_evicting_everything_resets_the_batch(tiny_model) -> None:
    decoder = TransformersDecoder(tiny_model, frozenset({EOS}), 0)
    decoder.step([seq(1, PROMPTS[1])], [])
    assert decoder.step([], [1]) == {}
    assert decoder.batch_size == 0
    assert decoder.step([seq(2, PROMPTS[2])], [])[2].token_id == alone(tiny_model, PROMPTS[2], 1)[0]


def test_seeded_sampling_is_independent_of_the_batch(tiny_model) -> None:
    sampled = {"do_sample": True, "seed": 42, "temperature": 1.5}
    reference = alone(tiny_model, PROMPTS[3], 8, **sampled)
    decoder = TransformersDecoder(tiny_model, frozenset({EOS}), 0)
    out = decoder.step([seq(1, PROMPTS[1]), seq(3, PROMPTS[3], **sampled)], [])
    tokens = [out[3].token_id] + [decoder.step([], [])[3].token_id for _ in range(7)]
    assert tokens == reference
    assert alone(tiny_model, PROMPTS[3], 8, do_sample=True, seed=7, temperature=1.5) != reference


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_lora_adapter_applies_to_its_own_rows_only(tiny_model, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    donor = LlamaForCausalLM(tiny_model.config)
    donor.load_state_dict(tiny_model.state_dict())
    lora = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(donor, lora).save_pretrained(tmp_path / "lora")

    base_tokens = alone(tiny_model, PROMPTS[1], 6)
    model = LlamaForCausalLM(tiny_model.config)
    model.load_state_dict(tiny_model.state_dict())
    decoder = TransformersDecoder(model.eval(), frozenset({EOS}), 0)
    decoder.load_adapter("v2", tmp_path / "lora")
    out = decoder.step([seq(1, PROMPTS[1]), seq(2, PROMPTS[1], adapter="v2")], [])
    rows = {1: [out[1].token_id], 2: [out[2].token_id]}
    for _ in range(5):
        step = decoder.step([], [])
        rows[1].append(step[1].token_id)
        rows[2].append(step[2].token_id)
    assert rows[1] == base_tokens
    assert rows[2] != base_tokens
    decoder.step([], [1, 2])
    decoder.unload_adapter("v2")
    assert alone_on(decoder, PROMPTS[1], 6) == base_tokens


def test_int8_model_decodes_and_refuses_lora(tiny_model, tmp_path: Path) -> None:
    from llmops_generation.adapters.loader import quantize_int8

    model = LlamaForCausalLM(tiny_model.config)
    model.load_state_dict(tiny_model.state_dict())
    decoder = TransformersDecoder(quantize_int8(model.eval()), frozenset({EOS}), 0, quantized=True)
    # The batch surgery works on the int8 model as on the float one.
    together = decoder.step([seq(1, PROMPTS[1]), seq(2, PROMPTS[2])], [])
    assert sorted(together) == [1, 2]
    assert len(decoder.step([], [1])) == 1
    with pytest.raises(ValueError, match="LoRA adapters need a float model"):
        decoder.load_adapter("v2", tmp_path)
    assert decoder.adapters == {}


def alone_on(decoder: TransformersDecoder, ids: list[int], steps: int) -> list[int]:
    out = [decoder.step([seq(9, ids)], [])[9].token_id]
    return out + [decoder.step([], [])[9].token_id for _ in range(steps - 1)]


def test_row_sampler_processing() -> None:
    logits = torch.tensor([[0.0, 3.0, 2.9, -1.0], [0.0, 3.0, 2.9, -1.0]])
    greedy = RowSampler(SamplingParams(), [])
    penalised = RowSampler(SamplingParams(repetition_penalty=5.0), [1])
    first, second = sample_batch(logits, [greedy, penalised])
    assert first.token_id == 1
    # Token 1 is in the prompt: the penalty divides its logit and 2 wins.
    assert second.token_id == 2
    top = sample_batch(logits[:1], [RowSampler(SamplingParams(top_n_tokens=2), [])])[0]
    assert [i for i, _ in top.top_tokens] == [1, 2]
    assert top.logprob == pytest.approx(float(torch.log_softmax(logits[0], -1)[1]))
    only_best = RowSampler(SamplingParams(do_sample=True, seed=3, top_k=1), [])
    assert {sample_batch(logits[:1], [only_best])[0].token_id for _ in range(5)} == {1}
    freq = RowSampler(SamplingParams(frequency_penalty=2.0), [])
    assert [sample_batch(logits[:1], [freq])[0].token_id for _ in range(2)] == [1, 2]
