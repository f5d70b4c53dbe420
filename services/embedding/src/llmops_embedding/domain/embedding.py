"""Request validation and the embedding use cases; no protobuf, no I/O of its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmops_embedding.models import find_model
from llmops_embedding.ports import Embedder
from llmops_kit.errors import FailedPrecondition, InvalidArgument

MAX_TEXTS = 256
MAX_TEXT_CHARS = 20_000


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    model: str
    dimensions: int


@dataclass(frozen=True)
class ModelInfo:
    model: str
    dimensions: int
    max_seq_length: int
    backend: str
    # The registry's short name ("" for a model outside it) and every served model's name.
    key: str = ""
    served_models: tuple[str, ...] = ()


def validate_texts(texts: Sequence[str]) -> None:
    """Refuses what the model would silently mangle: nothing, blanks, huge or too many texts."""
    if not texts:
        raise InvalidArgument("NO_TEXTS", "texts is empty; send at least one text")
    if len(texts) > MAX_TEXTS:
        raise InvalidArgument(
            "TOO_MANY_TEXTS", f"{len(texts)} texts in one call; at most {MAX_TEXTS}"
        )
    for i, text in enumerate(texts):
        if not text.strip():
            raise InvalidArgument("EMPTY_TEXT", f"texts[{i}] is empty or whitespace")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidArgument(
                "TEXT_TOO_LONG", f"texts[{i}] has {len(text)} characters; at most {MAX_TEXT_CHARS}"
            )


def empty_chunk_indexes(texts: Sequence[str]) -> list[int]:
    """Positions of chunks that carry no text (an upstream bug: such an event is dead-lettered)."""
    return [i for i, text in enumerate(texts) if not text.strip()]


class EmbeddingService:
    """Embeds with the default model (ingested chunks) or, on request, another served one."""

    def __init__(self, embedder: Embedder, extra: Sequence[Embedder] = ()) -> None:
        self.embedder = embedder
        self.served = [embedder, *[e for e in extra if e.model_name != embedder.model_name]]

    def replace_default(self, embedder: Embedder) -> None:
        """Serves `embedder` as the default model from now on: the same model on a faster
        backend, once it passed the check against the one serving (vectors stay the same)."""
        if embedder.model_name != self.embedder.model_name:
            raise ValueError(f"{embedder.model_name} cannot replace {self.embedder.model_name}")
        self.served = [embedder if e is self.embedder else e for e in self.served]
        self.embedder = embedder

    def embedder_for(self, model: str = "") -> Embedder:
        """The served model by full or short name; "" is the default one."""
        if not model:
            return self.embedder
        spec = find_model(model)
        wanted = spec.name if spec is not None else model
        for embedder in self.served:
            if embedder.model_name == wanted:
                return embedder
        served = ", ".join(e.model_name for e in self.served)
        if spec is None:
            raise InvalidArgument("UNKNOWN_MODEL", f"unknown embedding model {model!r}")
        raise FailedPrecondition(
            "MODEL_NOT_SERVED",
            f"model {spec.key} is not served here (serving: {served}); add it to "
            "LLMOPS_EMBEDDING_EXTRA_MODELS",
        )

    async def embed(
        self, texts: Sequence[str], *, normalize: bool = True, model: str = ""
    ) -> Embeddings:
        embedder = self.embedder_for(model)
        validate_texts(texts)
        vectors = await embedder.embed(texts, normalize=normalize)
        return Embeddings(vectors, embedder.model_name, embedder.dimensions)

    async def embed_many(self, groups: Sequence[Sequence[str]]) -> list[list[list[float]]]:
        """Embeds several groups of texts in one model call and splits the result back.

        One call over everything lets the model sort by length and fill whole batches, which
        is where the throughput on a Kafka batch of many small events comes from.
        """
        flat = [text for group in groups for text in group]
        if not flat:
            return [[] for _ in groups]
        vectors = await self.embedder.embed(flat, normalize=True)
        out: list[list[list[float]]] = []
        start = 0
        for group in groups:
            out.append(vectors[start : start + len(group)])
            start += len(group)
        return out

    def model_info(self, model: str = "") -> ModelInfo:
        e = self.embedder_for(model)
        spec = find_model(e.model_name)
        return ModelInfo(
            e.model_name, e.dimensions, e.max_seq_length, e.backend,
            key=spec.key if spec is not None else "",
            served_models=tuple(s.model_name for s in self.served),
        )
