"""Drift on real question embeddings: the shipped MiniLM model (loaded offline, as the embedding
service loads it) encodes questions of two topics and a corpus of the first."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from clickhouse_connect.driver.client import Client

from llmops_embedding.settings import EncoderSettings
from llmops_observability.drift import (
    DriftMonitor,
    DriftResult,
    DriftSettings,
    Reference,
    Status,
)

from ..drift_samples import (
    COOKING_PASSAGES,
    COOKING_QUESTIONS,
    FINANCE_QUESTIONS,
    add_corpus,
    add_questions,
    store_client,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOW = datetime(2026, 3, 10, 8, 30, tzinfo=UTC)
WINDOW_START = NOW - timedelta(hours=24)
BASELINE_START = WINDOW_START - timedelta(days=7)


@pytest.fixture(scope="module")
def encoded() -> dict[str, list[list[float]]]:
    """Each text set encoded once (not normalised: the monitor must normalise itself)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    settings = EncoderSettings()
    model = SentenceTransformer(str(settings.path), device="cpu")
    # A seeded draw from each set, as many as the tests store (encoding is the slow part).
    rng = np.random.default_rng(0)
    texts = {name: [values[i] for i in rng.permutation(len(values))[:n]] for name, values, n in (
        ("cooking", COOKING_QUESTIONS, 300), ("finance", FINANCE_QUESTIONS, 150),
        ("passages", COOKING_PASSAGES, 120))}
    return {name: model.encode(values, convert_to_numpy=True,
                               show_progress_bar=False).tolist()
            for name, values in texts.items()}


async def verdicts(client: Client, **settings: float) -> dict[Reference, DriftResult]:
    published = []

    async def publish(event: object) -> None:
        published.append(event)

    drift = DriftMonitor(client, publish, DriftSettings(**settings))
    results = await drift.run_once(NOW)
    assert len(published) == sum(r.detected for r in results)
    return {r.reference: r for r in results}


async def test_the_same_topic_asked_again_is_not_drift(encoded, request) -> None:
    client = store_client(request, "minilm")
    cooking = encoded["cooking"]
    add_questions(client, "chef", cooking[:150], BASELINE_START, WINDOW_START)
    add_questions(client, "chef", cooking[150:], WINDOW_START, NOW)
    add_corpus(client, "chef", encoded["passages"], NOW)

    results = await verdicts(client)

    baseline, corpus = results[Reference.BASELINE_WINDOW], results[Reference.CORPUS]
    assert baseline.status is Status.BELOW_THRESHOLD and baseline.centroid_distance < 0.05
    # Questions are not passages, but they sit close to the corpus they are about.
    assert corpus.status is Status.BELOW_THRESHOLD and corpus.centroid_distance < 0.5
    assert (baseline.current_samples, corpus.reference_samples) == (150, 120)
    # With the centroid gate open, the classifier cannot tell the two windows apart either.
    forced = (await verdicts(client, centroid_threshold=0.0))[Reference.BASELINE_WINDOW]
    assert forced.status is Status.NOT_CONFIRMED and abs(forced.roc_auc - 0.5) < 0.08


async def test_questions_on_a_new_topic_are_drift(encoded, request) -> None:
    client = store_client(request, "minilm")
    add_questions(client, "chef", encoded["cooking"][:150], BASELINE_START, WINDOW_START)
    add_questions(client, "chef", encoded["finance"], WINDOW_START, NOW)
    add_corpus(client, "chef", encoded["passages"], NOW)

    results = await verdicts(client)

    for reference in (Reference.BASELINE_WINDOW, Reference.CORPUS):
        result = results[reference]
        assert result.status is Status.CONFIRMED, reference
        assert result.centroid_distance > 0.5 and result.roc_auc > 0.95
    rows = client.query("SELECT reference, detected FROM drift FINAL ORDER BY reference")
    assert rows.result_rows == [("baseline_window", 1), ("corpus", 1)]
