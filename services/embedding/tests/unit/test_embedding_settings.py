"""Settings: defaults, the bundled model folder, env overrides."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmops_embedding.settings import Settings, bundled_model_dir

pytestmark = pytest.mark.unit


def test_defaults_point_at_the_bundled_model():
    settings = Settings()
    assert settings.service_name == "embedding" and settings.grpc_port == 7062
    assert settings.encoder.path == bundled_model_dir()
    assert (settings.encoder.path / "modules.json").is_file()
    assert (settings.encoder.batch_size, settings.encoder.device) == (64, "cpu")
    assert settings.consumer_group == "embedding"


def test_import_and_settings_do_no_model_work():
    # torch takes seconds to import: it must load when the model does, not at import time.
    code = (
        "import sys, llmops_embedding.__main__, llmops_embedding.bootstrap;"
        "from llmops_embedding.settings import Settings; Settings();"
        "print(sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_env_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOPS_EMBEDDING_ENCODER__PATH", str(tmp_path))
    monkeypatch.setenv("LLMOPS_EMBEDDING_ENCODER__BATCH_SIZE", "8")
    monkeypatch.setenv("LLMOPS_EMBEDDING_MAX_RECORDS", "32")
    settings = Settings()
    assert settings.encoder.path == tmp_path
    assert (settings.encoder.batch_size, settings.max_records) == (8, 32)


def test_bad_value_names_the_field(monkeypatch):
    monkeypatch.setenv("LLMOPS_EMBEDDING_ENCODER__BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="batch_size"):
        Settings()
