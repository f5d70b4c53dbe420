"""The drift statistics on plain arrays, and the drift settings."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from llmops_observability import drift_stats
from llmops_observability.drift import DriftSettings, Reference

from ..drift_samples import cloud, directions

pytestmark = pytest.mark.unit


def test_centroid_distance_is_cosine_distance_of_the_mean_directions() -> None:
    x = np.array([[1.0, 0.0], [2.0, 0.0]], dtype=np.float32)
    assert drift_stats.centroid_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert drift_stats.centroid_distance(x, np.array([[0.0, 3.0]], np.float32)) == \
        pytest.approx(1.0)
    assert drift_stats.centroid_distance(x, -x) == pytest.approx(2.0)
    # Normalised before averaging: a long vector does not outweigh a short one.
    mixed = np.array([[10.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    diagonal = np.array([[1.0, 1.0]], dtype=np.float32)
    assert drift_stats.centroid_distance(mixed, diagonal) == pytest.approx(0.0, abs=1e-6)


def test_centroid_distance_of_centroids_at_the_origin_is_orthogonal() -> None:
    x = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    assert drift_stats.centroid_distance(x, x) == 1.0


def test_as_matrix_keeps_the_most_common_length_and_normalise_drops_zero_rows() -> None:
    m = drift_stats.as_matrix([[1.0, 0.0], [0.0, 2.0], [1.0, 2.0, 3.0], [float("nan"), 1.0],
                               [float("inf"), 0.0]])
    assert m.tolist() == [[1.0, 0.0], [0.0, 2.0]] and m.dtype == np.float32
    assert drift_stats.as_matrix([]).shape == (0, 0)
    n = drift_stats.normalise(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    assert n.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)]]


def test_balanced_cuts_the_larger_side_deterministically() -> None:
    a = np.arange(20, dtype=np.float32).reshape(10, 2)
    b = np.arange(8, dtype=np.float32).reshape(4, 2)
    a1, b1 = drift_stats.balanced(a, b, seed=3)
    a2, _ = drift_stats.balanced(a, b, seed=3)
    assert a1.shape == (4, 2) and b1 is b
    assert a1.tolist() == a2.tolist()


def test_classifier_auc_is_near_half_for_one_distribution_and_high_for_a_shift() -> None:
    centre, shifted = directions(seed=1)
    same = drift_stats.classifier_auc(np.array(cloud(centre, 300, 1)),
                                      np.array(cloud(centre, 300, 2)), folds=5, seed=0)
    moved = drift_stats.classifier_auc(np.array(cloud(shifted, 300, 3)),
                                       np.array(cloud(centre, 300, 2)), folds=5, seed=0)
    assert 0.4 < same < 0.6
    assert moved > 0.9
    again = drift_stats.classifier_auc(np.array(cloud(centre, 300, 1)),
                                       np.array(cloud(centre, 300, 2)), folds=5, seed=0)
    assert again == same


def test_the_required_auc_rises_for_small_samples_only() -> None:
    assert drift_stats.auc_null_se(50, 50) == pytest.approx(0.05802, abs=1e-5)
    assert drift_stats.required_auc(0.55, 3.0, 50) == pytest.approx(0.67406, abs=1e-5)
    assert drift_stats.required_auc(0.55, 3.0, 200) == pytest.approx(0.58671, abs=1e-5)
    assert drift_stats.required_auc(0.55, 3.0, 2000) == 0.55
    assert drift_stats.required_auc(0.55, 0.0, 50) == 0.55


def test_classifier_auc_needs_a_sample_per_fold() -> None:
    x = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="3 samples per side cannot make 5 folds"):
        drift_stats.classifier_auc(x, x, folds=5, seed=0)


def test_settings_read_their_prefix_and_pick_the_threshold_per_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_OBSERVABILITY_DRIFT_WINDOW_HOURS", "6")
    monkeypatch.setenv("LLMOPS_OBSERVABILITY_DRIFT_CORPUS_CENTROID_THRESHOLD", "0.4")
    s = DriftSettings()
    assert s.window_hours == 6 and s.baseline_days == 7 and s.auc_threshold == 0.55
    assert s.threshold(Reference.CORPUS) == 0.4
    assert s.threshold(Reference.BASELINE_WINDOW) == 0.05


@pytest.mark.parametrize(("field", "value", "message"), [
    ("auc_threshold", 0.4, "auc_threshold"),
    ("interval_seconds", 0, "interval_seconds"),
    ("min_samples", 3, "min_samples must be at least cv_folds"),
    ("max_samples", 10, "max_samples must be at least min_samples"),
])
def test_settings_refuse_inconsistent_values(field: str, value: float, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DriftSettings(**{field: value})
