"""The Embedder port on sentence-transformers (PyTorch), loaded from a local folder."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_embedding.settings import EncoderSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

TORCH = "torch"


@dataclass(frozen=True)
class BackendReport:
    """Which encoder backend serves, and why (see encoders.load_embedder).

    `fallback_reason` is a stable code (BACKEND_UNAVAILABLE, EXPORT_FAILED, LOAD_FAILED,
    PROBE_FAILED, COSINE_TOO_LOW) for metrics and alerts; `detail` is for a person.
    """

    requested: str
    active: str
    runtime: str
    min_cosine: float | None = None
    cache: str | None = None
    fallback_from: str | None = None
    fallback_reason: str | None = None
    detail: str | None = None
    # The requested backend is still being exported and checked (in the background).
    pending: bool = False

    def describe(self) -> str:
        if self.fallback_reason:
            return (f"{self.runtime} (fallback: {self.fallback_from} refused, "
                    f"{self.fallback_reason}: {self.detail})")
        if self.pending:
            return f"{self.runtime} (until {self.requested} has been checked, in the background)"
        if self.min_cosine is None:
            return self.runtime
        return f"{self.runtime} (probe cosine {self.min_cosine:.5f} to torch, {self.cache})"


def _load(path: Path, device: str) -> SentenceTransformer:
    # Imported here: torch takes seconds to import and must not load when settings are read.
    from sentence_transformers import SentenceTransformer

    if not path.is_dir():
        raise FileNotFoundError(f"embedding model folder {path} does not exist")
    # A local path never touches the hub; HF_HUB_OFFLINE=1 (set in main) guards the rest.
    return SentenceTransformer(str(path), device=device)


class SentenceTransformerEmbedder:
    """Runs encode in a worker thread (torch releases the GIL) so the event loop keeps serving.

    One encode at a time: two concurrent encodes would only fight over the same cores.
    """

    def __init__(self, model: SentenceTransformer, settings: EncoderSettings) -> None:
        self._model = model
        self._settings = settings
        self._lock = asyncio.Lock()
        dim_fn = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension
        )
        dims = dim_fn()
        if not dims:
            raise ValueError(f"model at {settings.path} does not report its embedding dimension")
        self._dimensions = int(dims)
        self.report = BackendReport(settings.backend, TORCH, self._runtime())

    @classmethod
    async def load(cls, settings: EncoderSettings) -> SentenceTransformerEmbedder:
        model = await asyncio.to_thread(_load, settings.path, settings.device)
        embedder = cls(model, settings)
        log.info(
            "loaded embedding model %s (%d dims) from %s on %s",
            settings.name, embedder.dimensions, settings.path, settings.device,
        )
        return embedder

    def with_backend(self, backend: str) -> SentenceTransformerEmbedder:
        """The same PyTorch model, for settings that ask for `backend` (select_backend's
        reference while this one keeps serving)."""
        return type(self)(self._model, self._settings.model_copy(update={"backend": backend}))

    @property
    def model_name(self) -> str:
        return self._settings.name

    @property
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def max_seq_length(self) -> int:
        return int(self._model.max_seq_length or 0)

    def _runtime(self) -> str:
        return f"sentence-transformers/torch/{self._settings.device}"

    @property
    def backend(self) -> str:
        return self.report.describe()

    @property
    def model(self) -> SentenceTransformer:
        return self._model

    @property
    def settings(self) -> EncoderSettings:
        return self._settings

    def _encode(self, texts: Sequence[str], normalize: bool) -> Any:
        return self._model.encode(
            list(texts),
            batch_size=self._settings.batch_size,
            normalize_embeddings=normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    async def embed(self, texts: Sequence[str], *, normalize: bool = True) -> list[list[float]]:
        out: list[list[float]] = []
        step = self._settings.slice_size
        for start in range(0, len(texts), step):
            part = texts[start : start + step]
            async with self._lock:
                array = await asyncio.to_thread(self._encode, part, normalize)
            out.extend(array.tolist())
        return out
