"""Response-only masking, packing and the deterministic batch schedule."""

from __future__ import annotations

from typing import Any

import pytest

from llmops_trainer.worker import data
from llmops_trainer.worker.data import IGNORE, Example

pytestmark = pytest.mark.unit


class CharChatTokenizer:
    """ChatML rendered character by character: token id = code point (easy to read back)."""

    pad_token_id = 0
    eos_token_id = 3

    def _render(self, messages: list[dict[str, str]], prompt: bool) -> str:
        text = "".join(f"<{m['role']}>{m['content']}|\n" for m in messages)
        return text + ("<assistant>" if prompt else "")

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> list[int]:
        return [ord(c) for c in self._render(conversation, kwargs["add_generation_prompt"])]

    def __call__(self, text: str, **kwargs: Any) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}


def _targets(example: Example) -> str:
    return "".join(chr(t) if t != IGNORE else "_" for t in example.labels)


MESSAGES = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "yo"},
    {"role": "user", "content": "q"},
    {"role": "assistant", "content": "ans"},
]


def test_response_only_labels_cover_each_assistant_reply_and_its_end() -> None:
    example = data.encode_chat(CharChatTokenizer(), MESSAGES, response_only=True)
    text = "".join(chr(t) for t in example.input_ids)
    assert text == "<system>S|\n<user>hi|\n<assistant>yo|\n<user>q|\n<assistant>ans|\n"
    kept = [chr(t) for t in example.labels if t != IGNORE]
    assert "".join(kept) == "yo|\nans|\n"
    assert _targets(example) == "_" * len("<system>S|\n<user>hi|\n<assistant>") + "yo|\n" + "_" * len(
        "<user>q|\n<assistant>"
    ) + "ans|\n"


def test_full_loss_labels_every_token() -> None:
    example = data.encode_chat(CharChatTokenizer(), MESSAGES, response_only=False)
    assert example.labels == example.input_ids


def test_text_records_get_an_end_token() -> None:
    example = data.encode_text(CharChatTokenizer(), "ab")
    assert example.input_ids == [97, 98, 3] and example.labels == [97, 98, 3]


def test_prepare_truncates_and_drops_records_without_targets() -> None:
    long_prompt = [{"role": "user", "content": "x" * 100}, {"role": "assistant", "content": "y"}]
    records = [{"messages": MESSAGES}, {"messages": long_prompt}, {"text": "abcdef"}]
    examples, stats = data.prepare(records, CharChatTokenizer(), max_seq_len=40, response_only=True)
    assert stats.records == 3 and stats.truncated == 2 and stats.dropped_no_target == 1
    assert len(examples) == 2 and all(len(e.input_ids) <= 40 for e in examples)


def test_pack_keeps_examples_whole_and_masks_the_seams() -> None:
    examples = [Example([1] * 5, [1] * 5), Example([2] * 3, [2] * 3), Example([3] * 2, [3] * 2)]
    packed = data.pack(examples, max_seq_len=8)
    assert [e.input_ids for e in packed] == [[1] * 5 + [2] * 3, [3, 3]]
    assert packed[0].labels == [1] * 5 + [IGNORE, 2, 2]
    assert sum(len(e.input_ids) for e in packed) == 10


def test_pack_never_exceeds_max_seq_len() -> None:
    examples = [Example([i] * (i % 7 + 1), [i] * (i % 7 + 1)) for i in range(1, 40)]
    packed = data.pack(examples, max_seq_len=10)
    assert all(len(e.input_ids) <= 10 for e in packed)
    assert sorted(t for e in packed for t in e.input_ids) == sorted(t for e in examples for t in e.input_ids)
    assert len(packed) < len(examples)


def test_collate_pads_right_and_ignores_padding() -> None:
    batch = data.collate([Example([5, 6, 7], [IGNORE, 6, 7]), Example([8], [8])], pad_id=0)
    assert batch["input_ids"] == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"] == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"] == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]


def test_schedule_partitions_each_epoch_across_ranks_and_micro_steps() -> None:
    s = data.Schedule(n_examples=17, micro_batch_size=2, gradient_accumulation=2, world_size=2,
                      epochs=2, seed=3)
    assert s.steps_per_epoch == 2 and s.total_steps == 4
    seen = [i for step in (1, 2) for m in (0, 1) for r in (0, 1) for i in s.micro_batch(step, m, r)]
    assert len(seen) == 16 and len(set(seen)) == 16  # one epoch: no example twice
    assert s.epoch_of(3) == 1 and s.order(0) != s.order(1)
    again = data.Schedule(17, 2, 2, 2, 2, seed=3)
    assert again.micro_batch(3, 1, 1) == s.micro_batch(3, 1, 1)  # a pure function: resumable


def test_schedule_respects_max_steps() -> None:
    assert data.Schedule(16, 2, 1, 1, 3, seed=0, max_steps=5).total_steps == 5
    assert data.Schedule(16, 2, 1, 1, 3, seed=0, max_steps=0).total_steps == 24


def test_eval_batches_give_every_rank_the_same_number_of_batches() -> None:
    r0 = list(data.eval_batches(5, 2, 0, 2))
    r1 = list(data.eval_batches(5, 2, 1, 2))
    assert r0 == [[0, 2], [4]] and r1 == [[1, 3], []]
    assert sorted(i for b in r0 + r1 for i in b) == [0, 1, 2, 3, 4]
