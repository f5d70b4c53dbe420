"""Response-only masking and packing with the shipped model's real tokenizer and chat template."""

from __future__ import annotations

import pytest

from llmops_trainer.worker import data
from llmops_trainer.worker.testing import base_model_dir, chat_records

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model_dir())


def test_only_the_assistant_reply_and_its_end_of_turn_are_targets(tokenizer) -> None:  # type: ignore[no-untyped-def]
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is Kafka?"},
        {"role": "assistant", "content": "A distributed log."},
        {"role": "user", "content": "And Weaviate?"},
        {"role": "assistant", "content": "A vector database."},
    ]
    example = data.encode_chat(tokenizer, messages, response_only=True)
    targets = [t for t in example.labels if t != data.IGNORE]
    text = tokenizer.decode(targets)
    assert text.replace("\n", "") == "A distributed log.<|im_end|>A vector database.<|im_end|>"
    assert "Kafka" not in text and "Be brief" not in text
    full = tokenizer.decode(example.input_ids)
    assert full.startswith("<|im_start|>system\nBe brief.") and full.count("<|im_start|>assistant") == 2


def test_packing_the_sample_records_saves_sequences(tokenizer) -> None:  # type: ignore[no-untyped-def]
    examples, stats = data.prepare(chat_records(16), tokenizer, max_seq_len=128, response_only=True)
    assert stats.examples == 16 and stats.truncated == 0
    packed = data.pack(examples, 128)
    assert len(packed) < 16 and all(len(p.input_ids) <= 128 for p in packed)
    assert sum(e.trained_tokens for e in examples) == sum(p.trained_tokens for p in packed)
