"""Interfaces the domain needs: a model that decodes a batch step by step, and its tokenizer."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from llmops_generation.domain.model import ModelSpec, NewSequence, StepToken


@runtime_checkable
class Decoder(Protocol):
    """Owns a model and the KV cache of its running batch.

    The batcher calls it from one worker thread at a time and never concurrently, so an
    implementation needs no locking. Sequences are known by the batcher's seq ids.
    """

    @property
    def eos_token_ids(self) -> frozenset[int]: ...

    @property
    def decode_path(self) -> str:
        """Which implementation decodes and why (shown in /info), e.g. "fast (int8; ...)"."""
        ...

    def step(self, admit: Sequence[NewSequence], evict: Collection[int]) -> Mapping[int, StepToken]:
        """Drops `evict`, decodes one token for every running sequence, prefills `admit`.

        Returns the next token of every sequence in the batch afterwards (old and new).
        """
        ...

    def reset(self) -> None:
        """Forgets the whole batch (after a failed step)."""
        ...

    def load_adapter(self, name: str, path: Path) -> None: ...

    def unload_adapter(self, name: str) -> None: ...

    def close(self) -> None:
        """Releases the model's memory; the decoder is not used afterwards."""
        ...


@runtime_checkable
class TextCodec(Protocol):
    """The tokenizer side of a model. Called from the event loop only."""

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str:
        """Ids to text, special tokens included (detokenizing and stop matching use it)."""
        ...

    def token_text(self, token_id: int) -> str: ...

    def is_special(self, token_id: int) -> bool: ...

    def tokenize(self, text: str) -> list[tuple[int, str, int, int]]:
        """(id, text, start, stop) per token, offsets in characters of `text`."""
        ...

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt the model's chat template makes of `messages`, ready for the reply."""
        ...


class ModelLoader(Protocol):
    """Builds the tokenizer and decoder of a full model (slow; the caller runs it in a thread)."""

    def load(self, spec: ModelSpec) -> tuple[TextCodec, Decoder]: ...
