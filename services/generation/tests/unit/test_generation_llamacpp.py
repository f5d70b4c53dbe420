"""The llama.cpp decoder's batching, on a fake llama.cpp model (the real one: integration tier).

The fake's logits put all mass on `token + 1`, so every expected next token is known. What is
checked: one llama_batch per step carrying each running row's next token and whole joining
prompts, one slot (llama.cpp sequence id) per row, KV removal and slot reuse on eviction,
prefill logprobs, LoRA rows sent to the transformers fallback built on first adapter load, and
the engine choice.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from llmops_generation.adapters import llamacpp_loader
from llmops_generation.adapters.llamacpp_decoder import LlamaCppDecoder
from llmops_generation.adapters.llamacpp_model import Entry, LlamaCppModel
from llmops_generation.bootstrap import torch_threads
from llmops_generation.domain.model import NewSequence, SamplingParams, StepToken
from llmops_generation.ports import Decoder
from llmops_generation.settings import Settings

pytestmark = pytest.mark.unit

VOCAB = 64


class FakeModel:
    def __init__(self, slots: int = 3) -> None:
        self.slots = slots
        self.ctx_per_slot = 32
        self.threads = (2, 2)
        self.description = "llama 1M Q4_1"
        self.calls: list[list[Entry]] = []
        self.removed: list[tuple[int, int]] = []  # (slot, from position)
        self.partial_removal = True  # False: like a memory that can only drop a whole sequence
        self.cleared = 0
        self.closed = False

    def decode(self, entries: Sequence[Entry]) -> np.ndarray:
        self.calls.append(list(entries))
        rows = [e for e in entries if e.logits]
        logits = np.zeros((len(rows), VOCAB), dtype=np.float32)
        for i, e in enumerate(rows):
            logits[i, (e.token + 1) % VOCAB] = 10.0
        return logits

    def remove(self, slot: int, start: int = 0) -> bool:
        if start > 0 and not self.partial_removal:
            return False
        self.removed.append((slot, start))
        return True

    def clear(self) -> None:
        self.cleared += 1

    def close(self) -> None:
        self.closed = True


class FakeFallback:
    def __init__(self) -> None:
        self.steps: list[tuple[list[int], set[int]]] = []
        self.loaded: list[str] = []
        self.running: set[int] = set()

    @property
    def adapters(self) -> Mapping[str, Path]:
        return {name: Path(name) for name in self.loaded}

    @property
    def batch_size(self) -> int:
        return len(self.running)

    def step(self, admit: Sequence[NewSequence], evict: Collection[int]) -> Mapping[int, StepToken]:
        self.steps.append(([s.seq_id for s in admit], set(evict)))
        self.running = (self.running - set(evict)) | {s.seq_id for s in admit}
        return {i: StepToken(token_id=50, logprob=0.0) for i in self.running}

    def load_adapter(self, name: str, path: Path) -> None:
        self.loaded.append(name)

    def unload_adapter(self, name: str) -> None:
        self.loaded.remove(name)

    def reset(self) -> None:
        self.running = set()

    def close(self) -> None:
        pass


def seq(seq_id: int, ids: list[int], adapter: str | None = None, details: bool = False) -> NewSequence:
    return NewSequence(seq_id, tuple(ids), SamplingParams(), adapter, details)


def make(
    slots: int = 3, *, prefix_cache: bool = False
) -> tuple[LlamaCppDecoder, FakeModel, list[FakeFallback]]:
    model = FakeModel(slots)
    built: list[FakeFallback] = []

    def fallback() -> FakeFallback:
        built.append(FakeFallback())
        return built[-1]

    decoder = LlamaCppDecoder(
        model,  # type: ignore[arg-type]
        frozenset({0}),
        fallback,  # type: ignore[arg-type]
        prefix_cache=prefix_cache,
    )
    return decoder, model, built


def test_joining_prompts_and_running_rows_share_one_batch() -> None:
    decoder, model, _ = make()
    assert isinstance(decoder, Decoder)
    out = decoder.step([seq(1, [5, 6, 7]), seq(2, [20, 21])], [])
    assert {k: v.token_id for k, v in out.items()} == {1: 8, 2: 22}
    (first,) = model.calls
    assert [(e.token, e.pos, e.logits) for e in first if e.slot == first[0].slot] == [
        (5, 0, False),
        (6, 1, False),
        (7, 2, True),
    ]
    slots = {e.slot for e in first}
    assert len(slots) == 2

    out = decoder.step([seq(3, [40])], [])
    assert {k: v.token_id for k, v in out.items()} == {1: 9, 2: 23, 3: 41}
    second = model.calls[1]
    # The running rows' next tokens at their next positions, then the joining prompt.
    assert [(e.token, e.pos) for e in second] == [(8, 3), (22, 2), (40, 0)]
    assert second[2].slot not in slots
    assert decoder.batch_size == 3
    assert decoder.decode_path == "llama.cpp (llama 1M Q4_1; 2/2 threads; LoRA rows on transformers float32)"


def test_eviction_frees_the_kv_cells_and_the_slot() -> None:
    decoder, model, _ = make(slots=2)
    decoder.step([seq(1, [5]), seq(2, [9])], [])
    slot_of_1 = model.calls[0][0].slot
    with pytest.raises(RuntimeError, match="slots are free"):
        decoder.step([seq(3, [1])], [])
    decoder.reset()
    assert model.cleared == 1
    decoder.step([seq(1, [5]), seq(2, [9])], [])
    out = decoder.step([seq(3, [30])], [1])
    assert model.removed == [(slot_of_1, 0)]
    assert {k: v.token_id for k, v in out.items()} == {2: 11, 3: 31}
    assert model.calls[-1][-1].slot == slot_of_1
    decoder.step([], [2, 3])
    assert decoder.batch_size == 0
    assert decoder.step([], []) == {}


def test_prefill_logprobs_cover_every_prompt_token() -> None:
    decoder, model, _ = make()
    out = decoder.step([seq(1, [3, 4, 5], details=True)], [])
    assert all(e.logits for e in model.calls[0])
    prefill = out[1].prefill_logprobs
    assert prefill is not None and prefill[0] is None and len(prefill) == 3
    # Token 4 follows 3 and 5 follows 4: exactly what the fake predicts, so near-certain.
    assert all(lp is not None and lp > -0.01 for lp in prefill[1:])
    assert out[1].token_id == 6


def test_lora_rows_run_on_the_fallback_built_at_the_first_adapter() -> None:
    decoder, model, built = make()
    with pytest.raises(ValueError, match="no LoRA adapter"):
        decoder.step([seq(1, [5], adapter="a")], [])
    decoder.reset()
    decoder.load_adapter("a", Path("a"))
    decoder.load_adapter("b", Path("b"))
    assert len(built) == 1 and built[0].loaded == ["a", "b"]
    assert set(decoder.adapters) == {"a", "b"}
    out = decoder.step([seq(1, [5], adapter="a"), seq(2, [7])], [])
    assert {k: v.token_id for k, v in out.items()} == {1: 50, 2: 8}
    assert [e.token for e in model.calls[-1]] == [7]
    out = decoder.step([], [1])
    assert built[0].steps[-1] == ([], {1})
    assert {k: v.token_id for k, v in out.items()} == {2: 9}
    decoder.unload_adapter("a")
    assert built[0].loaded == ["b"]
    decoder.close()
    assert model.closed


def test_engine_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_GENERATION_ENGINE", "llamacpp")
    monkeypatch.setenv("LLMOPS_GENERATION_LLAMACPP_THREADS", "3")
    settings = Settings()
    chosen = (settings.engine, settings.llamacpp_threads, settings.llamacpp_threads_batch)
    assert chosen == ("llamacpp", 3, None)
    monkeypatch.setattr(llamacpp_loader, "llamacpp_available", lambda: False)
    assert llamacpp_loader.resolve_engine("auto") == "transformers"
    assert llamacpp_loader.resolve_engine("transformers") == "transformers"
    with pytest.raises(ValueError, match="llama-cpp-python is not installed"):
        llamacpp_loader.resolve_engine("llamacpp")
    monkeypatch.setattr(llamacpp_loader, "llamacpp_available", lambda: True)
    assert llamacpp_loader.resolve_engine("auto") == "llamacpp"
    assert llamacpp_loader.resolve_engine("transformers") == "transformers"


def test_torch_gets_one_thread_when_llamacpp_serves() -> None:
    class Loader:
        def __init__(self, engine: str) -> None:
            self.engine = engine

    assert torch_threads(Settings(), Loader("llamacpp")) == 1  # type: ignore[arg-type]
    assert torch_threads(Settings(), Loader("transformers")) is None  # type: ignore[arg-type]
    assert torch_threads(Settings(torch_threads=2), Loader("llamacpp")) == 2  # type: ignore[arg-type]


# -- prefix reuse -------------------------------------------------------------------------


def fed(call: list[Entry], slot: int) -> list[tuple[int, int, bool]]:
    return [(e.token, e.pos, e.logits) for e in call if e.slot == slot]


def test_a_joining_prompt_reuses_the_longest_cached_prefix_and_feeds_the_rest() -> None:
    decoder, model, _ = make(prefix_cache=True)
    assert decoder.prefix_cache
    decoder.step([seq(1, [1, 2, 3, 4, 5]), seq(2, [1, 2, 9, 9])], [])
    slot_a, slot_b = model.calls[0][0].slot, model.calls[0][-1].slot
    decoder.step([], [1, 2])
    assert model.removed == []  # ended rows keep their KV cells

    out = decoder.step([seq(3, [1, 2, 3, 4, 7, 8])], [])
    # Seq 1's slot shares 4 tokens: its cells from position 4 go, positions continue from 4.
    assert model.removed == [(slot_a, 4)]
    assert fed(model.calls[-1], slot_a) == [(7, 4, False), (8, 5, True)]
    assert (out[3].token_id, out[3].reused_prompt_tokens) == (9, 4)

    # The next step feeds seq 3's token at the position after its whole prompt.
    decoder.step([], [])
    assert fed(model.calls[-1], slot_a) == [(9, 6, True)]
    # A prompt sharing 2 tokens with seq 2's slot (the only other one holding a prefix).
    out = decoder.step([seq(4, [1, 2, 9, 5, 5])], [])
    assert model.removed[-1] == (slot_b, 3)
    assert fed(model.calls[-1], slot_b) == [(5, 3, False), (5, 4, True)]
    assert out[4].reused_prompt_tokens == 3


def test_the_same_prompt_again_feeds_only_its_last_two_tokens() -> None:
    decoder, model, _ = make(prefix_cache=True)
    first = decoder.step([seq(1, [10, 11, 12])], [])
    decoder.step([], [])  # one generated token (13) enters the KV cells too
    slot = model.calls[0][0].slot
    decoder.step([], [1])
    again = decoder.step([seq(2, [10, 11, 12])], [])
    # The cells hold 10 11 12 13; the last two prompt tokens are fed again (see SlotPool).
    assert model.removed == [(slot, 1)]
    assert model.calls[-1] == [Entry(11, 1, slot, False), Entry(12, 2, slot, True)]
    assert again[2].token_id == first[1].token_id == 13
    assert again[2].reused_prompt_tokens == 1


def test_prefill_logprobs_requests_never_reuse_and_take_an_empty_slot_first() -> None:
    decoder, model, _ = make(slots=2, prefix_cache=True)
    decoder.step([seq(1, [3, 4, 5])], [])
    slot_1 = model.calls[0][0].slot
    decoder.step([], [1])
    out = decoder.step([seq(2, [3, 4, 5], details=True)], [])
    (other,) = {e.slot for e in model.calls[-1]}
    assert other != slot_1 and model.removed == []
    assert [(e.token, e.pos) for e in model.calls[-1]] == [(3, 0), (4, 1), (5, 2)]
    assert out[2].reused_prompt_tokens == 0 and out[2].prefill_logprobs is not None
    # With only seq 1's cached slot left, a details request clears it and computes everything.
    out = decoder.step([seq(3, [3, 4, 5], details=True)], [])
    assert model.removed == [(slot_1, 0)]
    assert [(e.token, e.pos) for e in model.calls[-1] if e.slot == slot_1] == [(3, 0), (4, 1), (5, 2)]


def test_a_memory_that_cannot_cut_a_tail_starts_the_slot_afresh() -> None:
    decoder, model, _ = make(prefix_cache=True)
    model.partial_removal = False
    decoder.step([seq(1, [1, 2, 3, 4])], [])
    slot = model.calls[0][0].slot
    decoder.step([], [1])
    out = decoder.step([seq(2, [1, 2, 3, 9])], [])
    assert model.removed == [(slot, 0)]
    assert [e.pos for e in model.calls[-1]] == [0, 1, 2, 3]
    assert out[2].reused_prompt_tokens == 0


def test_reset_forgets_the_cached_prefixes_and_the_setting_turns_reuse_off() -> None:
    decoder, model, _ = make(prefix_cache=True)
    decoder.step([seq(1, [1, 2, 3])], [])
    decoder.step([], [1])
    decoder.reset()  # llama_memory_clear: no slot holds cells any more
    out = decoder.step([seq(2, [1, 2, 3])], [])
    assert [e.pos for e in model.calls[-1]] == [0, 1, 2] and out[2].reused_prompt_tokens == 0
    assert model.removed == [] and model.cleared == 1

    decoder, model, _ = make(prefix_cache=False)
    assert not decoder.prefix_cache
    decoder.step([seq(1, [1, 2, 3])], [])
    slot = model.calls[0][0].slot
    decoder.step([], [1])
    assert model.removed == [(slot, 0)]
    out = decoder.step([seq(2, [1, 2, 3])], [])
    assert [e.pos for e in model.calls[-1]] == [0, 1, 2] and out[2].reused_prompt_tokens == 0


def test_the_prefix_cache_setting_reaches_the_llamacpp_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_generation.bootstrap import engine_loader

    assert Settings().prefix_cache is True
    monkeypatch.setenv("LLMOPS_GENERATION_PREFIX_CACHE", "false")
    loader = engine_loader(Settings())
    assert loader._config.prefix_cache is False  # type: ignore[attr-defined]


def test_llama_cpp_gets_a_step_in_slot_order_and_the_caller_its_logits_in_its_own() -> None:
    # With a KV stream per slot, llama.cpp cuts a batch wherever the slot ids stop rising by
    # one; rows in admission order (slots 2, 0, 1) would run as separate graphs.
    seen: list[list[Entry]] = []

    def fake_decode(entries: Sequence[Entry]) -> np.ndarray:
        seen.append(list(entries))
        rows = [e for e in entries if e.logits]
        logits = np.zeros((len(rows), VOCAB), dtype=np.float32)
        for i, e in enumerate(rows):
            logits[i, e.token] = 1.0
        return logits

    model = LlamaCppModel.__new__(LlamaCppModel)
    model._decode = fake_decode  # type: ignore[method-assign]
    entries = [
        Entry(20, 5, 2, True),
        Entry(30, 0, 0, False),  # a joining prompt on slot 0: its tokens keep their order
        Entry(31, 1, 0, True),
        Entry(10, 7, 1, True),
    ]
    logits = model.decode(entries)
    assert [(e.slot, e.token) for e in seen[0]] == [(0, 30), (0, 31), (1, 10), (2, 20)]
    # The marked rows' logits come back in the caller's order: slot 2's, slot 0's, slot 1's.
    assert logits.argmax(axis=1).tolist() == [20, 31, 10]
    ordered = [Entry(1, 0, 0, True), Entry(2, 0, 1, True)]
    model.decode(ordered)
    assert seen[1] == ordered
