"""The exported backends on the real bundled model: same vectors as PyTorch, cache, fallback.

Every export here is real (torch.onnx / openvino.convert_model from the shipped weights) and
every check runs the real runtime; only the tests that need a broken export copy a good one
and damage it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from llmops_embedding.adapters import runtimes
from llmops_embedding.adapters.encoders import ExportedEmbedder, load_embedder
from llmops_embedding.adapters.export_cache import META_FILE, ExportCache
from llmops_embedding.api.metrics import record_backend
from llmops_embedding.settings import EncoderSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Not the probe texts: the check at start-up must generalise, not just pass on what it saw.
TEXTS = [
    "How many vacation days do new employees get in their first year?",
    "Expense reports are due within 30 days of the purchase.",
    "보안 사고가 발생하면 누구에게 연락해야 하나요?",
    "x",
    " ".join(["Chunks overlap by a few tokens so no sentence is cut in half."] * 30),
    "The quarterly budget review moved to the second Tuesday of the month.",
] * 3


def cosines(a: list[list[float]], b: list[list[float]]) -> np.ndarray:
    x, y = np.asarray(a), np.asarray(b)
    return np.sum(x * y, axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


@pytest.fixture(scope="session")
def export_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


def settings_for(backend: str, root: Path, **extra: Any) -> EncoderSettings:
    return EncoderSettings(backend=backend, cache_dir=root, **extra)


@pytest.fixture(scope="session")
async def exported(export_root) -> dict[str, ExportedEmbedder]:
    import openvino

    def no_converter(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("openvino.convert_model sends usage telemetry; it must not run")

    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(openvino, "convert_model", no_converter)
        for backend in runtimes.FAST_BACKENDS:
            embedder = await load_embedder(settings_for(backend, export_root))
            assert isinstance(embedder, ExportedEmbedder), embedder.backend
            out[backend] = embedder
    return out


def copying_exporter(source: Path, calls: list[str], damage: bool = False) -> Any:
    """An exporter that copies a finished export (seconds instead of a minute of tracing)."""

    def export(backend: str, model: Any, folder: Path) -> None:
        calls.append(backend)
        for file in source.iterdir():
            if file.name != META_FILE:
                shutil.copy(file, folder / file.name)
        if damage:
            damage_weights(folder)

    return export


def damage_weights(folder: Path) -> None:
    """Overwrites the middle of the weights with noise: the file still loads, the math is off."""
    weights = folder / "model.bin" if (folder / "model.bin").exists() else folder / "model.onnx"
    data = bytearray(weights.read_bytes())
    start, length = len(data) // 4, len(data) // 3
    data[start : start + length] = np.random.default_rng(0).integers(
        0, 256, length, dtype=np.uint8).tobytes()
    weights.write_bytes(bytes(data))


@pytest.mark.parametrize("backend", runtimes.FAST_BACKENDS)
async def test_backend_vectors_match_torch(exported, st_embedder, backend):
    embedder = exported[backend]
    fast, ref = await embedder.embed(TEXTS), await st_embedder.embed(TEXTS)
    assert embedder.report.active == backend and embedder.report.fallback_reason is None
    assert embedder.report.min_cosine is not None and embedder.report.min_cosine >= 0.999
    assert embedder.dimensions == 384 and embedder.max_seq_length == 256
    assert [len(v) for v in fast] == [384] * len(TEXTS)
    assert cosines(fast, ref).min() >= 0.999
    assert np.linalg.norm(fast, axis=1) == pytest.approx([1.0] * len(TEXTS), abs=1e-5)
    # Order survives the sort-by-length batching, across batches and with duplicates.
    assert cosines(fast[:6], fast[6:12]).min() == pytest.approx(1.0, abs=1e-5)
    assert embedder.backend.startswith(f"{backend}/CPU/")
    assert "probe cosine" in embedder.backend


async def test_unnormalized_vectors_keep_direction(exported, st_embedder):
    (raw,) = await exported["openvino"].embed(["hello world"], normalize=False)
    (ref,) = await st_embedder.embed(["hello world"], normalize=False)
    assert cosines([raw], [ref])[0] >= 0.999


async def test_small_batches_match_large(export_root, exported):
    small = await load_embedder(settings_for("onnx", export_root, batch_size=2))
    a, b = await small.embed(TEXTS), await exported["onnx"].embed(TEXTS)
    assert cosines(a, b).min() == pytest.approx(1.0, abs=1e-5)


async def test_cached_export_is_reused(export_root, exported):
    cache = ExportCache(export_root)
    before = {k: cache.folder(k).stat().st_mtime_ns for k in cache.entries()}
    calls: list[str] = []
    embedder = await load_embedder(settings_for("openvino", export_root),
                                   exporter=lambda *a: calls.append(a[0]))
    assert calls == []
    assert embedder.report.active == "openvino" and embedder.report.cache == "export cached"
    assert {k: cache.folder(k).stat().st_mtime_ns for k in cache.entries()} == before
    assert sorted(before) == sorted(cache.entries()) and len(before) == 2


async def test_auto_picks_openvino_from_the_cache(export_root, exported):
    embedder = await load_embedder(settings_for("auto", export_root))
    assert (embedder.report.requested, embedder.report.active) == ("auto", "openvino")
    assert embedder.report.cache == "export cached"


async def test_damaged_cache_is_exported_again(tmp_path, export_root, exported):
    good = exported["openvino"]
    key = next(k for k in ExportCache(export_root).entries() if "-openvino-" in k)
    shutil.copytree(export_root / key, tmp_path / key)
    damage_weights(tmp_path / key)
    calls: list[str] = []
    embedder = await load_embedder(settings_for("openvino", tmp_path),
                                   exporter=copying_exporter(export_root / key, calls))
    assert calls == ["openvino"]
    assert embedder.report.active == "openvino" and embedder.report.cache == "exported now"
    assert cosines(await embedder.embed(TEXTS), await good.embed(TEXTS)).min() > 0.99999


@pytest.mark.parametrize("backend", runtimes.FAST_BACKENDS)
async def test_damaged_export_falls_back_to_torch(tmp_path, export_root, exported, st_embedder,
                                                  backend):
    key = next(k for k in ExportCache(export_root).entries() if f"-{backend}-" in k)
    calls: list[str] = []
    embedder = await load_embedder(
        settings_for(backend, tmp_path),
        exporter=copying_exporter(export_root / key, calls, damage=True))
    assert calls == [backend]
    report = embedder.report
    assert (report.requested, report.active, report.fallback_from) == (backend, "torch", backend)
    # Noise in the weights: wrong vectors, or (ONNX) a file the runtime no longer parses.
    assert report.fallback_reason in {"COSINE_TOO_LOW", "PROBE_FAILED", "LOAD_FAILED"}
    assert embedder.backend.startswith("sentence-transformers/torch/cpu (fallback: ")
    assert cosines(await embedder.embed(TEXTS), await st_embedder.embed(TEXTS)).min() > 0.99999
    registry = CollectorRegistry()
    record_backend(report, registry)
    assert registry.get_sample_value("llmops_embedding_encoder_info", {
        "requested": backend, "active": "torch", "runtime": "sentence-transformers/torch/cpu",
        "fallback_reason": report.fallback_reason}) == 1.0


async def test_auto_tries_onnx_when_openvino_fails(tmp_path, export_root, exported):
    ov_key = next(k for k in ExportCache(export_root).entries() if "-openvino-" in k)
    onnx_key = next(k for k in ExportCache(export_root).entries() if "-onnx-" in k)
    calls: list[str] = []
    ov_bad = copying_exporter(export_root / ov_key, calls, damage=True)
    onnx_good = copying_exporter(export_root / onnx_key, calls)

    def exporter(backend: str, model: Any, folder: Path) -> None:
        (ov_bad if backend == "openvino" else onnx_good)(backend, model, folder)

    embedder = await load_embedder(settings_for("auto", tmp_path), exporter=exporter)
    assert calls == ["openvino", "onnx"]
    assert (embedder.report.requested, embedder.report.active) == ("auto", "onnx")


async def test_missing_runtime_is_reported(tmp_path, exported):
    def no_runtime(*args: Any, **kwargs: Any) -> None:
        raise ImportError("No module named 'openvino'")

    embedder = await load_embedder(settings_for("openvino", tmp_path), exporter=no_runtime)
    assert embedder.report.fallback_reason == "BACKEND_UNAVAILABLE"
    assert embedder.report.active == "torch"
    assert "No module named 'openvino'" in embedder.backend


async def test_the_service_serves_pytorch_at_once_then_the_checked_backend(
        export_root, exported, st_embedder, monkeypatch):
    from llmops_embedding.bootstrap import BackgroundSelection, build
    from llmops_embedding.settings import Settings

    monkeypatch.setenv("LLMOPS_EMBEDDING_ENCODER__CACHE_DIR", str(export_root))
    monkeypatch.setenv("LLMOPS_EMBEDDING_ENCODER__BACKEND", "auto")
    app = await build(Settings(grpc_host="127.0.0.1", grpc_port=0))
    [selection] = [h.start.__self__ for h in app.hooks  # type: ignore[union-attr]
                   if isinstance(getattr(h.start, "__self__", None), BackgroundSelection)]
    service = selection.service
    # Before the hook starts: PyTorch answers, and says what it waits for.
    assert service.embedder.report.active == "torch"
    assert "until auto has been checked" in service.embedder.backend
    await selection.start()
    assert selection.done is not None
    chosen = await selection.done
    assert chosen is service.embedder and chosen.report.active == "openvino"
    vectors = await service.embedder.embed(TEXTS)
    assert cosines(vectors, await st_embedder.embed(TEXTS)).min() >= 0.999
    await selection.stop()
