"""Fakes of the generation ports (unit tests only): a character tokenizer and a scripted model.

The fake model continues a prompt `question|answer` with the characters of `answer` (up to a
newline, so chat prompts work) and then the end-of-sequence token; a prompt without `|` gets
"ab" repeated forever. With an adapter the answer comes out upper-cased, so a test can see
which weights a row ran on.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llmops_generation.domain.errors import TemplateError
from llmops_generation.domain.model import ModelSpec, NewSequence, StepToken

EOS = 0


class FakeCodec:
    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join("</s>" if i == EOS else chr(i) for i in ids)

    def token_text(self, token_id: int) -> str:
        return self.decode([token_id])

    def is_special(self, token_id: int) -> bool:
        return token_id == EOS

    def tokenize(self, text: str) -> list[tuple[int, str, int, int]]:
        return [(ord(c), c, i, i + 1) for i, c in enumerate(text)]

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        if any(m["role"] == "bad" for m in messages):
            raise TemplateError("Template error: role 'bad' is not allowed")
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "


@dataclass
class StepCall:
    admitted: list[int]
    evicted: list[int]
    batch: list[int]  # seq ids in the batch after the step


@dataclass
class _Row:
    script: list[int]
    adapter: str | None
    produced: int = 0


@dataclass
class FakeDecoder:
    fail_on_step: int | None = None
    calls: list[StepCall] = field(default_factory=list)
    adapters: dict[str, Path] = field(default_factory=dict)
    closed: bool = False
    # Set to slow steps down so tests can act while a step runs.
    step_gate: threading.Event | None = None
    # Prompt tokens each joining sequence reports as taken from a cached prefix (at most all
    # but its last), as the llama.cpp decoder's prefix reuse does.
    reuse: int = 0
    _rows: dict[int, _Row] = field(default_factory=dict)

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({EOS})

    @property
    def decode_path(self) -> str:
        return "fake"

    def _script(self, seq: NewSequence) -> list[int]:
        text = "".join(chr(i) for i in seq.input_ids)
        if "|" not in text:
            return []
        answer = text.split("|", 1)[1].split("\n", 1)[0]
        if seq.adapter:
            answer = answer.upper()
        return [ord(c) for c in answer] + [EOS]

    def _next(self, row: _Row) -> int:
        if row.script:
            token = row.script[min(row.produced, len(row.script) - 1)]
        else:
            token = ord("ab"[row.produced % 2])
        row.produced += 1
        return token

    def step(self, admit: Sequence[NewSequence], evict: Collection[int]) -> Mapping[int, StepToken]:
        if self.step_gate is not None:
            self.step_gate.wait(5)
        if self.fail_on_step is not None and len(self.calls) + 1 == self.fail_on_step:
            self.calls.append(StepCall([s.seq_id for s in admit], sorted(evict), []))
            raise RuntimeError("boom")
        for seq_id in evict:
            self._rows.pop(seq_id, None)
        out: dict[int, StepToken] = {}
        for seq_id, row in self._rows.items():
            out[seq_id] = StepToken(token_id=self._next(row), logprob=-0.5)
        for seq in admit:
            if seq.adapter is not None and seq.adapter not in self.adapters:
                raise RuntimeError(f"adapter {seq.adapter} not loaded")
            row = self._rows[seq.seq_id] = _Row(self._script(seq), seq.adapter)
            token = self._next(row)
            top = ((token, -0.5),) * seq.sampling.top_n_tokens
            prefill = (None, *([-1.0] * (len(seq.input_ids) - 1))) if seq.want_prefill_logprobs else None
            out[seq.seq_id] = StepToken(
                token_id=token,
                logprob=-0.5,
                top_tokens=top,
                prefill_logprobs=prefill,
                reused_prompt_tokens=min(self.reuse, len(seq.input_ids) - 1),
            )
        self.calls.append(StepCall([s.seq_id for s in admit], sorted(evict), sorted(self._rows)))
        return out

    def reset(self) -> None:
        self._rows.clear()

    def load_adapter(self, name: str, path: Path) -> None:
        if "broken" in str(path):
            raise ValueError("not a LoRA adapter")
        self.adapters[name] = path

    def unload_adapter(self, name: str) -> None:
        del self.adapters[name]

    def close(self) -> None:
        self.closed = True


class FakeLoader:
    def __init__(self) -> None:
        self.decoders: dict[str, FakeDecoder] = {}
        self.specs: dict[str, ModelSpec] = {}

    def load(self, spec: ModelSpec) -> tuple[FakeCodec, FakeDecoder]:
        if not spec.path.exists():
            raise OSError(f"no model at {spec.path}")
        self.specs[spec.model_id] = spec
        decoder = self.decoders[spec.model_id] = FakeDecoder()
        return FakeCodec(), decoder


@pytest.fixture
def codec() -> FakeCodec:
    return FakeCodec()


@pytest.fixture
def decoder() -> FakeDecoder:
    return FakeDecoder()


@pytest.fixture
def loader() -> FakeLoader:
    return FakeLoader()
