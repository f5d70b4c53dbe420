"""Backend settings, the export cache's key and atomicity, the probe's cosine, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from llmops_embedding.adapters.encoders import min_cosine
from llmops_embedding.adapters.export_cache import (
    META_FILE,
    ExportCache,
    cache_key,
    library_versions,
    model_fingerprint,
)
from llmops_embedding.adapters.sentence_transformers import BackendReport
from llmops_embedding.api.metrics import record_backend
from llmops_embedding.settings import Settings

pytestmark = pytest.mark.unit

VERSIONS = {"torch": "2.15.0", "transformers": "5.24.0", "openvino": "2026.4.1"}


def test_backend_defaults_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    encoder = Settings().encoder
    assert (encoder.backend, encoder.min_cosine, encoder.openvino_precision) == (
        "auto", 0.999, "auto")
    assert encoder.cache_dir == tmp_path / "cache" / "embedding"
    monkeypatch.setenv("LLMOPS_EMBEDDING_ENCODER__BACKEND", "onnx")
    monkeypatch.setenv("LLMOPS_EMBEDDING_ENCODER__CACHE_DIR", str(tmp_path / "x"))
    monkeypatch.setenv("LLMOPS_EMBEDDING_ENCODER__MIN_COSINE", "0.9995")
    encoder = Settings().encoder
    assert (encoder.backend, encoder.cache_dir, encoder.min_cosine) == (
        "onnx", tmp_path / "x", 0.9995)


@pytest.mark.parametrize(("field", "value"), [("BACKEND", "tensorrt"), ("MIN_COSINE", "1.5")])
def test_bad_backend_settings_fail_with_the_field_name(monkeypatch, field, value):
    monkeypatch.setenv(f"LLMOPS_EMBEDDING_ENCODER__{field}", value)
    with pytest.raises(ValidationError, match=field.lower()):
        Settings()


def test_cache_key_changes_with_each_part():
    base = cache_key("sentence-transformers/all-MiniLM-L6-v2", "f" * 64, "openvino", VERSIONS)
    assert base.startswith("sentence-transformers-all-minilm-l6-v2-openvino-")
    assert base == cache_key("sentence-transformers/all-MiniLM-L6-v2", "f" * 64, "openvino",
                             dict(reversed(list(VERSIONS.items()))))
    others = {
        cache_key("other/model", "f" * 64, "openvino", VERSIONS),
        cache_key("sentence-transformers/all-MiniLM-L6-v2", "e" * 64, "openvino", VERSIONS),
        cache_key("sentence-transformers/all-MiniLM-L6-v2", "f" * 64, "onnx", VERSIONS),
        cache_key("sentence-transformers/all-MiniLM-L6-v2", "f" * 64, "openvino",
                  {**VERSIONS, "openvino": "2026.5.0"}),
    }
    assert base not in others and len(others) == 4


def test_library_versions_name_the_backend_runtime():
    assert set(library_versions("onnx")) == {"torch", "transformers", "sentence-transformers",
                                             "onnx", "onnxruntime"}
    assert set(library_versions("openvino")) >= {"openvino", "torch"}
    assert library_versions("openvino")["torch"] not in ("", "missing")


def test_fingerprint_follows_content_not_time(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.bin").write_bytes(b"\x00\x01")
    first = model_fingerprint(tmp_path)
    (tmp_path / "config.json").touch()
    assert model_fingerprint(tmp_path) == first
    (tmp_path / "sub" / "w.bin").write_bytes(b"\x00\x02")
    assert model_fingerprint(tmp_path) != first


def test_cache_store_is_all_or_nothing(tmp_path):
    cache = ExportCache(tmp_path / "cache")

    def broken(folder: Path) -> None:
        (folder / "model.xml").write_text("<half")
        raise RuntimeError("tracer crashed")

    with pytest.raises(RuntimeError, match="tracer crashed"):
        cache.store("k", {"backend": "openvino"}, broken)
    assert cache.lookup("k") is None and list((tmp_path / "cache").iterdir()) == []

    folder = cache.store("k", {"backend": "openvino"},
                         lambda f: (f / "model.xml").write_text("<ok/>"))
    assert cache.lookup("k") == folder == tmp_path / "cache" / "k"
    assert (folder / "model.xml").read_text() == "<ok/>"
    assert json.loads((folder / META_FILE).read_text()) == {"backend": "openvino"}
    assert cache.meta("k") == {"backend": "openvino"} and list(cache.entries()) == ["k"]
    cache.discard("k")
    assert cache.lookup("k") is None and list(cache.entries()) == []


def test_min_cosine_counts_nan_and_shape_mismatch_as_failure():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert min_cosine(a, a) == pytest.approx(1.0)
    assert min_cosine(a, np.array([[1.0, 0.0], [1.0, 1.0]])) == pytest.approx(2 ** -0.5)
    assert min_cosine(a, np.array([[1.0, 0.0], [np.nan, 1.0]])) == -1.0
    assert min_cosine(a, a[:1]) == -1.0


def test_report_descriptions():
    served = BackendReport("auto", "openvino", "openvino/CPU/bf16", min_cosine=0.99994,
                           cache="export cached")
    assert served.describe() == "openvino/CPU/bf16 (probe cosine 0.99994 to torch, export cached)"
    fell = BackendReport("onnx", "torch", "sentence-transformers/torch/cpu", fallback_from="onnx",
                         fallback_reason="COSINE_TOO_LOW", detail="probe cosine 0.41 < 0.999")
    assert fell.describe() == ("sentence-transformers/torch/cpu (fallback: onnx refused, "
                               "COSINE_TOO_LOW: probe cosine 0.41 < 0.999)")
    assert BackendReport("torch", "torch", "sentence-transformers/torch/cpu").describe() == (
        "sentence-transformers/torch/cpu")


def test_encoder_info_metric():
    registry = CollectorRegistry()
    record_backend(BackendReport("auto", "openvino", "openvino/CPU/bf16", 0.9999, "x"), registry)
    labels = {"requested": "auto", "active": "openvino", "runtime": "openvino/CPU/bf16",
              "fallback_reason": ""}
    assert registry.get_sample_value("llmops_embedding_encoder_info", labels) == 1.0


def test_cache_store_keeps_an_export_another_replica_finished_first(tmp_path):
    cache = ExportCache(tmp_path)
    first = cache.store("k", {"n": 1}, lambda f: (f / "model.xml").write_text("first"))
    again = cache.store("k", {"n": 2}, lambda f: (f / "model.xml").write_text("second"))
    assert again == first and (first / "model.xml").read_text() == "first"
    assert cache.meta("k") == {"n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]  # no temporary folder left
