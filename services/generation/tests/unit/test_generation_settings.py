"""Settings: env names, the bundled model, and start-up checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmops_generation.adapters.loader import cache_name
from llmops_generation.settings import BUNDLED_GGUF, Settings

pytestmark = pytest.mark.unit


def test_defaults_point_at_the_bundled_gguf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMOPS_HOME", raising=False)
    settings = Settings()
    assert (settings.model_path / BUNDLED_GGUF).is_file()
    assert (settings.host, settings.port, settings.max_batch_size, settings.dtype) == (
        "127.0.0.1",
        8090,
        8,
        "auto",
    )
    assert settings.models_dir == Path(".llmops") / "models"


def test_env_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    monkeypatch.setenv("LLMOPS_GENERATION_PORT", "9999")
    monkeypatch.setenv("LLMOPS_GENERATION_DTYPE", "float32")
    monkeypatch.setenv("LLMOPS_GENERATION_MODEL_ID", "acme/model")
    settings = Settings()
    assert (settings.port, settings.dtype, settings.model_id) == (9999, "float32", "acme/model")
    assert settings.models_dir == tmp_path / "models"


def test_bad_settings_fail_with_the_field_name() -> None:
    with pytest.raises(ValidationError, match="max_input_tokens must be < max_total_tokens"):
        Settings(max_input_tokens=4096, max_total_tokens=2048)
    with pytest.raises(ValidationError, match="dtype"):
        Settings(dtype="int4")
    assert Settings(dtype="int8").dtype == "int8"


def test_cache_folder_name() -> None:
    assert cache_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "smollm2-135m-instruct"
    assert cache_name("../weird name!") == "weird-name"
