"""Precision/recall of toxicity on the labelled sets, per scorer (run with -s for the table):
the offline model alone, the lexicon alone, and both combined as the service does."""

from __future__ import annotations

import pytest

from llmops_safety.domain.engine import SafetyEngine
from llmops_safety.domain.policy import TenantPolicy

from ..labelled import TOXICITY_DEV, TOXICITY_HELDOUT, precision_recall, table

pytestmark = pytest.mark.integration

THRESHOLD = TenantPolicy().input.toxicity_block or 0.8


@pytest.mark.parametrize(("name", "data", "floor"), [
    ("dev", TOXICITY_DEV, 0.9),
    ("held-out", TOXICITY_HELDOUT, 0.6),
])
def test_toxicity_precision_recall(profanity_model, name, data, floor):
    engine = SafetyEngine(profanity_model)
    labels = [label for _, label in data]
    scores = [engine.analyse(text).scores for text, _ in data]
    raw = [s > THRESHOLD for s in profanity_model.score([t for t, _ in data]) for s in [s["toxicity"]]]
    results = {
        "model only (unmasked)": precision_recall(raw, labels),
        "lexicon only": precision_recall([s["toxicity.lexicon"] >= THRESHOLD for s in scores], labels),
        "combined (service)": precision_recall([s["toxicity"] >= THRESHOLD for s in scores], labels),
    }
    print()
    for scorer, metrics in results.items():
        print(table(f"toxicity, {name} set, {scorer}, threshold {THRESHOLD}", metrics))
    combined = results["combined (service)"]
    misses = [t for (t, lab), s in zip(data, scores, strict=True)
              if bool(lab) != (s["toxicity"] >= THRESHOLD)]
    print("  misclassified (combined):", misses)
    for cls in ("flagged", "clean"):
        assert combined[cls]["precision"] >= floor and combined[cls]["recall"] >= floor, misses
    # The point of the lexicon: the combination beats the model alone on recall.
    assert combined["flagged"]["recall"] > results["model only (unmasked)"]["flagged"]["recall"]
