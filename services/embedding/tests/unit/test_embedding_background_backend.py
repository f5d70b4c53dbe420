"""The asked-for backend is chosen in the background while PyTorch serves, then takes over."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from llmops_embedding.adapters.sentence_transformers import BackendReport
from llmops_embedding.bootstrap import BackgroundSelection
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_embedding.models import has_backends
from llmops_embedding.settings import EncoderSettings

from .conftest import FakeEmbedder

pytestmark = pytest.mark.unit


class Exported(FakeEmbedder):
    backend = "openvino/CPU/f32 (probe cosine 0.99998 to torch, exported)"
    report = BackendReport("auto", "openvino", "openvino/CPU/f32", 0.99998, "exported")

    async def embed(self, texts, *, normalize=True):
        return [[9.0, 9.0, 9.0] for _ in texts]


async def test_pytorch_serves_until_the_backend_passed_then_it_takes_over() -> None:
    torch, exported = FakeEmbedder(), Exported()
    service = EmbeddingService(torch)
    release = threading.Event()

    def select():
        assert release.wait(30)  # the export and its probe check, still running
        return exported

    selection = BackgroundSelection(service, select)
    await selection.start()
    await asyncio.sleep(0.05)
    assert service.embedder_for() is torch and service.served == [torch]
    assert await service.embedder_for().embed(["abc"]) == [[3.0, 1.0, 0.0]]

    release.set()
    assert selection.done is not None
    assert await asyncio.wait_for(selection.done, 30) is exported
    assert service.embedder_for() is exported and service.served == [exported]
    assert service.embedder_for("fake-model") is exported
    assert await service.embedder_for().embed(["abc"]) == [[9.0, 9.0, 9.0]]


async def test_a_failed_selection_leaves_pytorch_serving_and_says_so(caplog) -> None:
    torch = FakeEmbedder()
    service = EmbeddingService(torch)

    def select():
        raise RuntimeError("export crashed")

    selection = BackgroundSelection(service, select)
    with caplog.at_level(logging.ERROR):
        await selection.start()
        assert selection.done is not None
        assert await asyncio.wait_for(selection.done, 30) is None
    assert service.embedder_for() is torch
    assert "embedding backend selection failed" in caplog.text
    assert "export crashed" in caplog.text


async def test_a_selection_finishing_after_stop_changes_nothing() -> None:
    torch = FakeEmbedder()
    service = EmbeddingService(torch)
    started, release = threading.Event(), threading.Event()

    def select():
        started.set()
        assert release.wait(30)
        return Exported()

    selection = BackgroundSelection(service, select)
    await selection.start()
    assert await asyncio.to_thread(started.wait, 30)
    await selection.stop()  # returns at once: the export is not waited for
    assert selection.done is not None and selection.done.cancelled()
    release.set()
    await asyncio.sleep(0.2)
    assert service.embedder_for() is torch


def test_only_another_model_is_refused_as_the_replacement() -> None:
    service = EmbeddingService(FakeEmbedder())
    other = FakeEmbedder()
    other.model_name = "another-model"  # type: ignore[misc]
    with pytest.raises(ValueError, match="another-model cannot replace fake-model"):
        service.replace_default(other)


def test_which_settings_choose_a_backend_in_the_background() -> None:
    assert has_backends(EncoderSettings()) is True  # minilm, auto
    assert has_backends(EncoderSettings(backend="torch")) is False
    assert has_backends(EncoderSettings(model="muse")) is False  # numpy, no backends
    assert EncoderSettings().select_in_background is True


def test_the_report_says_what_it_waits_for() -> None:
    waiting = BackendReport("auto", "torch", "sentence-transformers/torch/cpu", pending=True)
    assert waiting.describe() == (
        "sentence-transformers/torch/cpu (until auto has been checked, in the background)")
    for requested in ("torch", "auto"):  # loaded directly, nothing waited for
        assert BackendReport(requested, "torch", "sentence-transformers/torch/cpu").describe() == (
            "sentence-transformers/torch/cpu")
