"""Picks the encoder backend at start-up: an exported model checked against PyTorch, or PyTorch.

`load_embedder` always loads the PyTorch model first (its tokenizer serves every backend, and
its vectors are the reference). For onnx / openvino / auto it then takes the export from the
cache (or makes it, once, offline from the same weights), encodes a fixed probe set with both,
and serves the export only when every probe vector has cosine >= min_cosine to PyTorch's. A
cached export that fails is discarded and made again once; an export that still fails leaves
PyTorch serving, logged as an error, with the reason in GetModelInfo.backend and the
llmops_embedding_encoder_info metric.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from llmops_embedding.adapters import runtimes
from llmops_embedding.adapters.export_cache import (
    ExportCache,
    cache_key,
    library_versions,
    model_fingerprint,
)
from llmops_embedding.adapters.sentence_transformers import (
    TORCH,
    BackendReport,
    SentenceTransformerEmbedder,
)
from llmops_embedding.settings import EncoderSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

Exporter = Callable[[str, "SentenceTransformer", Any], None]

# What every export must reproduce: short and long, English and Korean, punctuation, digits,
# and one text past max_seq_length (truncation). Fixed, so every start checks the same thing.
PROBE_TEXTS = (
    "hello world",
    "What do I do if my laptop is lost or stolen?",
    "Employees accrue 1.5 vacation days per month; unused days carry over until March 31.",
    "The vector store keeps one collection per embedding model and tenant.",
    "오늘 서울의 날씨는 맑습니다.",
    "분실한 노트북은 즉시 보안팀에 신고해야 합니다.",
    "Kafka consumer lag: 0 records behind on partition 3 (group=embedding).",
    "refund",
    "Invoices over $10,000 need a second approval from finance, within 5 business days.",
    "A cat is sitting on the mat, and a kitten sits on a rug beside it.",
    " ".join(["Retention policy applies to every exported document and its versions."] * 40),
    "E-mail: ops@example.com — on-call rotation starts Monday 09:00 UTC.",
)


class BackendRefused(Exception):
    """An exported backend that may not serve; `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ExportedEmbedder(SentenceTransformerEmbedder):
    """The PyTorch adapter's tokenizer, batching and locking, with the forward pass run by an
    exported model. Sorting by length before batching is sentence-transformers' own trick:
    batches of similar lengths waste little on padding."""

    def __init__(self, model: SentenceTransformer, settings: EncoderSettings,
                 runner: runtimes.Runner, report: BackendReport) -> None:
        super().__init__(model, settings)
        self._runner = runner
        self.report = report

    def _forward(self, texts: list[str]) -> np.ndarray:
        features = runtimes.preprocess(self._model, texts)
        feeds = {n: features[n].numpy().astype(np.int64, copy=False)
                 for n in self._runner.input_names}
        return self._runner(feeds)

    def _encode(self, texts: Sequence[str], normalize: bool) -> Any:
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        step = self._settings.batch_size
        for start in range(0, len(order), step):
            idx = order[start : start + step]
            out[idx] = self._forward([texts[i] for i in idx])
        if normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.where(norms == 0, 1.0, norms)
        return out


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest row-wise cosine; NaN/inf anywhere counts as -1 (never passes a threshold)."""
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return -1.0
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    cos = np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-12)
    return float(np.min(cos))


def _candidates(requested: str) -> tuple[str, ...]:
    return runtimes.FAST_BACKENDS if requested == "auto" else (requested,)


class BackendSelector:
    """The blocking part of load_embedder (export, compile, probe); runs in a worker thread."""

    def __init__(self, base: SentenceTransformerEmbedder,
                 exporter: Exporter = runtimes.export) -> None:
        self.base = base
        self.settings = base.settings
        self.cache = ExportCache(self.settings.cache_dir)
        self.exporter = exporter
        self._fingerprint: str | None = None
        self.reference = np.asarray(base._encode(PROBE_TEXTS, True))

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.settings.path)
        return self._fingerprint

    def key(self, backend: str) -> str:
        return cache_key(self.settings.name, self.fingerprint(), backend,
                         library_versions(backend))

    def select(self) -> SentenceTransformerEmbedder:
        requested = self.settings.backend
        if requested == TORCH:
            return self.base
        refusals: list[tuple[str, BackendRefused]] = []
        for backend in _candidates(requested):
            try:
                return self.try_backend(backend)
            except BackendRefused as refused:
                refusals.append((backend, refused))
                log.warning("embedding backend %s refused: %s", backend, refused)
        first_backend, first = refusals[0]
        detail = "; ".join(f"{b}: {r}" for b, r in refusals[1:])
        report = replace(
            self.base.report, fallback_from=first_backend, fallback_reason=first.reason,
            detail=first.detail + (f"; then {detail}" if detail else ""),
        )
        self.base.report = report
        log.error("embedding backend %s unavailable, serving with PyTorch instead: %s",
                  requested, report.describe(),
                  extra={"requested": requested, "reason": first.reason})
        return self.base

    def try_backend(self, backend: str) -> ExportedEmbedder:
        try:
            key = self.key(backend)
        except OSError as err:
            raise BackendRefused("EXPORT_FAILED", f"cannot read the model folder: {err}") from err
        if self.cache.lookup(key) is not None:
            try:
                return self._check(backend, key, "export cached")
            except BackendRefused as refused:
                # A cache can rot (a disk error, an edit by hand): make it again, once.
                log.warning("cached %s export %s failed (%s); exporting again", backend, key,
                            refused)
                self.cache.discard(key)
        self._export(backend, key)
        return self._check(backend, key, "exported now")

    def _export(self, backend: str, key: str) -> None:
        meta = {"model": self.settings.name, "backend": backend, "fingerprint":
                self.fingerprint(), "versions": library_versions(backend)}
        try:
            self.cache.store(key, meta, lambda folder: self.exporter(backend, self.base.model,
                                                                     folder))
        except ImportError as err:
            raise BackendRefused("BACKEND_UNAVAILABLE", f"{err}") from err
        except Exception as err:  # any exporter failure means: not this backend
            raise BackendRefused("EXPORT_FAILED", f"{type(err).__name__}: {err}") from err
        log.info("exported the embedding model to %s in %s", backend, self.cache.folder(key))

    def _check(self, backend: str, key: str, cache_state: str) -> ExportedEmbedder:
        folder = self.cache.folder(key)
        try:
            runner = runtimes.load_runner(backend, folder,
                                          precision=self.settings.openvino_precision)
        except ImportError as err:
            raise BackendRefused("BACKEND_UNAVAILABLE", f"{err}") from err
        except Exception as err:  # a file the runtime cannot read is a refusal
            raise BackendRefused("LOAD_FAILED", f"{type(err).__name__}: {err}") from err
        report = BackendReport(self.settings.backend, backend, runner.description,
                               cache=cache_state)
        embedder = ExportedEmbedder(self.base.model, self.settings, runner, report)
        try:
            vectors = np.asarray(embedder._encode(PROBE_TEXTS, True))
        except Exception as err:
            raise BackendRefused("PROBE_FAILED", f"{type(err).__name__}: {err}") from err
        cosine = min_cosine(vectors, self.reference)
        if not cosine >= self.settings.min_cosine:
            raise BackendRefused(
                "COSINE_TOO_LOW",
                f"probe cosine {cosine:.5f} < {self.settings.min_cosine} ({runner.description})")
        embedder.report = replace(report, min_cosine=cosine)
        return embedder


def choose_backend(base: SentenceTransformerEmbedder,
                   exporter: Exporter = runtimes.export) -> SentenceTransformerEmbedder:
    """The backend base.settings ask for, checked against `base` (PyTorch), or `base` itself
    with the reason it had to be PyTorch. Blocking: export, compile and probe."""
    if base.settings.backend == TORCH:
        return base
    embedder = BackendSelector(base, exporter).select()
    log.info("embedding backend: %s", embedder.backend,
             extra={"requested": base.settings.backend, "active": embedder.report.active})
    return embedder


async def select_backend(base: SentenceTransformerEmbedder,
                         exporter: Exporter = runtimes.export) -> SentenceTransformerEmbedder:
    """choose_backend in a worker thread."""
    return await asyncio.to_thread(choose_backend, base, exporter)


async def load_embedder(settings: EncoderSettings,
                        exporter: Exporter = runtimes.export) -> SentenceTransformerEmbedder:
    """The embedder the settings ask for, or PyTorch with the reason it had to be PyTorch."""
    return await select_backend(await SentenceTransformerEmbedder.load(settings), exporter)
