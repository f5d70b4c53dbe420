"""The offline toxicity model shipped inside the `alt-profanity-check` wheel (scikit-learn)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

log = logging.getLogger(__name__)


class ProfanityCheckModel:
    name = "alt-profanity-check"

    def __init__(self, predict_prob: Callable[[list[str]], Any], detail: str) -> None:
        self._predict_prob = predict_prob
        self.detail = detail

    @classmethod
    def load(cls) -> ProfanityCheckModel:
        # The package unpickles its vectorizer and model when imported: import here, not at
        # module import, and keep scikit-learn's version chatter out of the logs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from profanity_check import predict_prob
        version = metadata.version("alt-profanity-check")
        return cls(predict_prob, f"alt-profanity-check {version} (linear SVM, English)")

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        if not texts:
            return []
        return [{"toxicity": float(p)} for p in self._predict_prob(list(texts))]
