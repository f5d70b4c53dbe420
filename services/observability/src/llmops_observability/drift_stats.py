"""The statistics of query-embedding drift, on plain numpy arrays (no I/O, no ClickHouse).

Two stages, as monitoring tools do it: a cheap always-on signal (the cosine distance between the
centroids of the L2-normalised embeddings of two samples) and, only when that signal exceeds its
threshold, a two-sample test that confirms the shift is real and not sampling noise: a domain
classifier (logistic regression) trained to tell the current sample from the reference one,
scored by its ROC AUC under stratified k-fold cross-validation, as Evidently's domain classifier
does. AUC 0.5 means the classifier cannot tell the samples apart; above the AUC threshold (0.55
in Evidently) the distributions differ.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

Matrix = NDArray[np.float32]


def as_matrix(vectors: list[list[float]] | Matrix) -> Matrix:
    """Rows of equal length as a float32 matrix; rows whose length differs from the most common
    one, and rows holding NaN or infinity, are dropped (one bad producer must not stop the
    monitor)."""
    if isinstance(vectors, np.ndarray):
        x = vectors.astype(np.float32, copy=False).reshape(len(vectors), -1)
    elif not vectors:
        return np.zeros((0, 0), dtype=np.float32)
    else:
        lengths = [len(v) for v in vectors]
        dims = max(set(lengths), key=lambda n: (lengths.count(n), n))
        x = np.asarray([v for v in vectors if len(v) == dims], dtype=np.float32)
    return x[np.isfinite(x).all(axis=1)]


def normalise(x: Matrix) -> Matrix:
    """Each row scaled to unit L2 norm; all-zero rows are dropped (they carry no direction)."""
    norms = np.linalg.norm(x, axis=1)
    keep = norms > 0
    return (x[keep] / norms[keep, None]).astype(np.float32)


def centroid_distance(current: Matrix, reference: Matrix) -> float:
    """Cosine distance (1 - cosine similarity) between the centroids of the two samples' unit
    vectors: 0 for the same mean direction, up to 2 for opposite ones."""
    a = normalise(current).mean(axis=0)
    b = normalise(reference).mean(axis=0)
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    if denominator == 0.0:
        return 1.0  # centroids at the origin have no direction: as far as orthogonal
    return float(1.0 - float(a @ b) / denominator)


def auc_null_se(n_current: int, n_reference: int) -> float:
    """Standard error of a ROC AUC when the two samples come from one distribution (the
    Mann-Whitney statistic's variance under the null, Hanley & McNeil 1982):
    sqrt((n1 + n2 + 1) / (12 n1 n2)). About 0.058 for 50 a side, 0.009 for 2,000."""
    return math.sqrt((n_current + n_reference + 1) / (12 * n_current * n_reference))


def required_auc(threshold: float, z: float, n_per_side: int) -> float:
    """The AUC a classifier must beat: `threshold` (0.55, Evidently's), raised for small samples
    to 0.5 + z standard errors, where a same-distribution AUC often lands above 0.55 by chance
    (in 384 dimensions: one run in four at 50 a side, one in ten at 200)."""
    return max(threshold, 0.5 + z * auc_null_se(n_per_side, n_per_side))


def balanced(current: Matrix, reference: Matrix, seed: int) -> tuple[Matrix, Matrix]:
    """Both samples cut to the smaller one's size, by a seeded draw, so the classifier's base
    rate is 50/50 whatever the traffic was."""
    n = min(len(current), len(reference))
    rng = np.random.default_rng(seed)

    def cut(x: Matrix) -> Matrix:
        return x if len(x) == n else x[np.sort(rng.choice(len(x), size=n, replace=False))]

    return cut(current), cut(reference)


def classifier_auc(current: Matrix, reference: Matrix, *, folds: int, seed: int) -> float:
    """Mean ROC AUC of a logistic regression telling `current` (label 1) from `reference`
    (label 0) on held-out folds of a stratified, seeded k-fold split. Deterministic for a seed."""
    # Imported here: scikit-learn takes a second to import and most runs never get this far.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x_cur, x_ref = balanced(normalise(current), normalise(reference), seed)
    n = len(x_cur)
    if n < folds:
        raise ValueError(f"{n} samples per side cannot make {folds} folds")
    x = np.vstack([x_cur, x_ref])
    y = np.concatenate([np.ones(n, dtype=np.int8), np.zeros(n, dtype=np.int8)])
    model = LogisticRegression(max_iter=1000, random_state=seed)
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(model, x, y, cv=split, scoring="roc_auc")
    return float(np.mean(scores))
