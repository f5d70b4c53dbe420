"""Precision/recall of the injection detector on the labelled sets (run with -s for the table).

The floors guard against regressions; the sets are small and hand-written, so the numbers say
how the rules behave on these phrasings, not on attacks in the wild.
"""

from __future__ import annotations

import pytest

from llmops_safety.domain.injection import detect_injection
from llmops_safety.domain.policy import TenantPolicy

from ..labelled import INJECTION_DEV, INJECTION_HELDOUT, precision_recall, table

pytestmark = pytest.mark.unit

THRESHOLD = TenantPolicy().input.injection_block or 0.7


@pytest.mark.parametrize(("name", "data", "floor"), [
    ("dev", INJECTION_DEV, 0.95),
    ("held-out", INJECTION_HELDOUT, 0.75),
])
def test_injection_precision_recall(name: str, data: list[tuple[str, int]], floor: float) -> None:
    predicted = [detect_injection(text)[0] >= THRESHOLD for text, _ in data]
    metrics = precision_recall(predicted, [label for _, label in data])
    print("\n" + table(f"prompt injection, {name} set, threshold {THRESHOLD}", metrics))
    misses = [t for (t, lab), p in zip(data, predicted, strict=True) if bool(lab) != p]
    print("  misclassified:", misses)
    assert len(data) >= 20
    for cls in ("flagged", "clean"):
        assert metrics[cls]["precision"] >= floor and metrics[cls]["recall"] >= floor, misses
