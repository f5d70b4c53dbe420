"""Fit the injection head on the train split: USE embeddings -> logistic regression.

Reproducible: the split is a salted hash (sources.py), the solver is deterministic (lbfgs),
the folds that pick the threshold are seeded, and the result is plain JSON.
The threshold is the lowest probability at which at most `max_fpr` of the training negatives,
scored out-of-fold (each by a model that never saw it) and window by window as the service
scores them, would be flagged.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np

from llmops_safety.adapters.injection_model import ENCODER, Encoder, InjectionHead
from llmops_safety.domain.windows import windows
from llmops_safety.training.sources import WHEELS, Example

log = logging.getLogger(__name__)

SEED = 20261201
C = 1.0
MAX_FPR = 0.005


def embed(encoder: Encoder, texts: Sequence[str], batch: int = 256) -> np.ndarray:
    out = [encoder.encode(texts[i:i + batch]) for i in range(0, len(texts), batch)]
    return np.vstack(out) if out else np.zeros((0, 512), dtype=np.float32)


def training_rows(train: Sequence[Example]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts, labels and the index of the example each row came from.

    A long negative is also given window by window (the service scores windows), which
    teaches the head that a benign sentence out of a long text is still benign. Long
    positives stay whole: most sentences of a jailbreak are harmless on their own.
    """
    texts: list[str] = []
    labels: list[int] = []
    owner: list[int] = []
    for i, ex in enumerate(train):
        texts.append(ex.text)
        labels.append(ex.label)
        owner.append(i)
        spans = windows(ex.text)
        if ex.label == 0 and len(spans) > 1:
            for a, b in spans:
                texts.append(ex.text[a:b])
                labels.append(0)
                owner.append(i)
    return texts, np.asarray(labels), np.asarray(owner)


def threshold_out_of_fold(x: np.ndarray, y: np.ndarray, owner: np.ndarray, n_examples: int,
                          max_fpr: float, seed: int) -> tuple[float, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    example_label = np.zeros(n_examples, dtype=int)
    example_label[owner] = y
    best = np.zeros(n_examples)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    for _, held_idx in folds.split(np.zeros(n_examples), example_label):
        held = np.isin(owner, held_idx)
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
        clf.fit(x[~held], y[~held])
        p = clf.predict_proba(x[held])[:, 1]
        np.maximum.at(best, owner[held], p)  # an example scores its highest window
    negatives = np.sort(best[example_label == 0])
    k = int(np.floor(max_fpr * len(negatives)))
    threshold = float(negatives[len(negatives) - k - 1]) + 1e-6 if k < len(negatives) else 0.5
    threshold = min(max(threshold, 0.05), 0.95)
    positives = best[example_label == 1]
    stats = {"oof_recall": round(float((positives >= threshold).mean()), 4),
             "oof_fpr": round(float((best[example_label == 0] >= threshold).mean()), 4)}
    return threshold, stats


def fit(examples: Sequence[Example], max_fpr: float = MAX_FPR, seed: int = SEED) -> InjectionHead:
    from sklearn.linear_model import LogisticRegression

    train = [e for e in examples if e.split == "train"]
    texts, y, owner = training_rows(train)
    encoder = Encoder()
    t0 = time.perf_counter()
    x = embed(encoder, texts)
    log.info("embedded %d training rows in %.0f s", len(texts), time.perf_counter() - t0)
    threshold, stats = threshold_out_of_fold(x, y, owner, len(train), max_fpr, seed)
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
    clf.fit(x, y)
    counts = Counter(f"{e.source.split(':')[0]}/{e.label}" for e in train)
    meta: dict[str, Any] = {
        "trained_on": f"{len(train)} examples from "
                      f"{', '.join(sorted({e.source.split(':')[0] for e in train}))}",
        "wheels": [f"{w.package}=={w.version} sha256:{w.sha256}" for w in WHEELS],
        "train_counts": dict(sorted(counts.items())), "train_rows": len(texts),
        "c": C, "class_weight": "balanced", "seed": seed, "max_train_fpr": max_fpr, **stats,
        "scikit_learn": metadata.version("scikit-learn"),
    }
    return InjectionHead(clf.coef_[0].astype(np.float64), float(clf.intercept_[0]), threshold,
                         ENCODER, encoder.version, meta)
