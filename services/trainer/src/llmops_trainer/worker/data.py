"""Training examples: chat records -> token ids and labels, optional packing, deterministic batches.

Response-only loss: the labels of every token that is not an assistant reply are -100 (ignored
by the loss). The assistant spans are found by rendering the chat template on growing prefixes
of the conversation: the tokens between "prompt up to turn i with the generation prompt" and
"conversation up to and including turn i" are turn i's reply (its end-of-turn token included, so
the model learns to stop).

Batches are a pure function of (seed, epoch, step, micro-step, rank), so the data-loader
position is the global step alone and a resumed job sees exactly the batches it would have.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

IGNORE = -100


class ChatTokenizer(Protocol):
    """The slice of a transformers tokenizer the worker uses."""

    pad_token_id: int | None
    eos_token_id: int | None

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...

    def __call__(self, text: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


@dataclass(frozen=True)
class PrepareStats:
    records: int
    examples: int
    truncated: int
    dropped_no_target: int


class DataError(ValueError):
    """A record the worker cannot train on; the message names the file and line."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path.name} line {number} is not JSON: {exc}") from exc
            if not isinstance(record, dict) or not ("messages" in record or "text" in record):
                raise DataError(f"{path.name} line {number} has neither 'messages' nor 'text'")
            records.append(record)
    return records


def _ids(tokenizer: ChatTokenizer, messages: Sequence[dict[str, str]], prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        list(messages), tokenize=True, add_generation_prompt=prompt, return_dict=False
    )
    if isinstance(out, dict) or hasattr(out, "keys"):  # BatchEncoding in newer transformers
        out = out["input_ids"]
    return [int(i) for i in out]


def encode_chat(
    tokenizer: ChatTokenizer, messages: Sequence[dict[str, str]], response_only: bool
) -> Example:
    """Token ids of the rendered conversation; labels on the assistant replies (or everything)."""
    full = _ids(tokenizer, messages, prompt=False)
    if not response_only:
        return Example(full, list(full))
    labels = [IGNORE] * len(full)
    for turn, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        prompt = _ids(tokenizer, messages[:turn], prompt=True)
        start, end = len(prompt), len(_ids(tokenizer, messages[: turn + 1], prompt=False))
        if full[:start] != prompt or end > len(full):
            raise DataError("the chat template does not render conversations prefix by prefix")
        labels[start:end] = full[start:end]
    return Example(full, labels)


def encode_text(tokenizer: ChatTokenizer, text: str) -> Example:
    ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return Example(ids, list(ids))


def prepare(
    records: Sequence[dict[str, Any]], tokenizer: ChatTokenizer, max_seq_len: int, response_only: bool
) -> tuple[list[Example], PrepareStats]:
    """Encodes and truncates every record; drops those left with no trained token."""
    examples: list[Example] = []
    truncated = dropped = 0
    for record in records:
        if "messages" in record:
            example = encode_chat(tokenizer, record["messages"], response_only)
        else:
            example = encode_text(tokenizer, str(record["text"]))
        if len(example.input_ids) > max_seq_len:
            truncated += 1
            example = Example(example.input_ids[:max_seq_len], example.labels[:max_seq_len])
        # The loss predicts token t+1 from t: a label on position 0 alone trains nothing.
        if not any(label != IGNORE for label in example.labels[1:]):
            dropped += 1
            continue
        examples.append(example)
    return examples, PrepareStats(len(records), len(examples), truncated, dropped)


def pack(examples: Sequence[Example], max_seq_len: int) -> list[Example]:
    """Concatenates whole examples into sequences of at most max_seq_len tokens (first fit).

    Examples are never split, so no reply loses its beginning. Packed examples attend to
    their neighbours in the same sequence (no block-diagonal mask on the CPU attention path);
    with short chat records the saving in padding is worth that.
    """
    bins: list[tuple[list[int], list[int]]] = []
    for example in sorted(examples, key=lambda e: len(e.input_ids), reverse=True):
        size = len(example.input_ids)
        for ids, labels in bins:
            if len(ids) + size <= max_seq_len:
                ids.extend(example.input_ids)
                # The first token of a packed example is never a target of the previous one.
                labels.extend([IGNORE, *example.labels[1:]])
                break
        else:
            bins.append((list(example.input_ids), list(example.labels)))
    return [Example(ids, labels) for ids, labels in bins]


@dataclass(frozen=True)
class Schedule:
    """Which examples each rank's micro-batch holds, as a function of the global step."""

    n_examples: int
    micro_batch_size: int
    gradient_accumulation: int
    world_size: int
    epochs: int
    seed: int
    max_steps: int = 0

    @property
    def steps_per_epoch(self) -> int:
        per_step = self.micro_batch_size * self.gradient_accumulation * self.world_size
        return self.n_examples // per_step

    @property
    def total_steps(self) -> int:
        total = self.steps_per_epoch * self.epochs
        return min(total, self.max_steps) if self.max_steps else total

    def epoch_of(self, step: int) -> int:
        """The epoch (0-based) that global step `step` (1-based) belongs to."""
        return (step - 1) // self.steps_per_epoch

    def order(self, epoch: int) -> list[int]:
        order = list(range(self.n_examples))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def micro_batch(self, step: int, micro: int, rank: int) -> list[int]:
        """Example indices of rank `rank`'s micro-batch `micro` within global step `step`."""
        epoch = self.epoch_of(step)
        in_epoch = (step - 1) % self.steps_per_epoch
        size = self.micro_batch_size
        start = ((in_epoch * self.gradient_accumulation + micro) * self.world_size + rank) * size
        return self.order(epoch)[start : start + size]


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, list[list[int]]]:
    """Right-padded input_ids/attention_mask/labels as nested lists (the caller makes tensors)."""
    width = max(len(e.input_ids) for e in examples)
    batch: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    for e in examples:
        pad = width - len(e.input_ids)
        batch["input_ids"].append(e.input_ids + [pad_id] * pad)
        batch["attention_mask"].append([1] * len(e.input_ids) + [0] * pad)
        batch["labels"].append(e.labels + [IGNORE] * pad)
    return batch


def eval_batches(n_examples: int, micro_batch_size: int, rank: int, world_size: int) -> Iterator[list[int]]:
    """This rank's share of the validation set; every rank yields the same number of batches.

    ZeRO-3 gathers parameters collectively in each forward pass, so a rank with fewer batches
    would leave the others waiting: short shards end with empty lists (the caller runs a
    zero-weight forward on them).
    """
    mine = list(range(rank, n_examples, world_size))
    per_rank = -(-n_examples // world_size)
    batches = -(-per_rank // micro_batch_size)
    for b in range(batches):
        yield mine[b * micro_batch_size : (b + 1) * micro_batch_size]
