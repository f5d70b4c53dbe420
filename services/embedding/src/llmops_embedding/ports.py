"""Interfaces the embedding domain needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Embedder(Protocol):
    """A text embedding model."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    @property
    def max_seq_length(self) -> int: ...

    @property
    def backend(self) -> str: ...

    async def embed(self, texts: Sequence[str], *, normalize: bool = True) -> list[list[float]]:
        """One vector per text, in order."""
        ...
