"""Samples for the drift tests: synthetic vector clouds, two topic sets of questions and a
corpus for the real-model tests, and a helper that stores them as the service would."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pytest
from clickhouse_connect.driver.client import Client

from llmops_observability.testing import fresh_client

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def store_client(request: pytest.FixtureRequest, prefix: str) -> Client:
    """A migrated database of its own on this process' one chDB engine. When the suite's
    conftest names the engine's folder (session fixture `chdb_dsn`), that folder: chDB refuses
    a second path in one process, so every test must use the same one."""
    try:
        dsn = request.getfixturevalue("chdb_dsn")
    except pytest.FixtureLookupError:
        dsn = None
    return fresh_client(prefix, dsn)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def directions(seed: int, dims: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A topic direction and one shifted from it (cosine 0.78, as a new topic mixed in)."""
    rng = np.random.default_rng(seed)
    centre = unit(rng.normal(size=dims))
    other = rng.normal(size=dims)
    other = unit(other - (other @ centre) * centre)
    return centre, unit(centre + 0.8 * other)


def cloud(centre: np.ndarray, n: int, seed: int) -> list[list[float]]:
    """n vectors scattered around `centre` (noise of about unit norm, as question embeddings
    spread around their topic)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(scale=1 / np.sqrt(len(centre)), size=(n, len(centre)))
    return (centre + noise).astype(np.float32).tolist()


def add_questions(client: Client, tenant: str, vectors: Sequence[Sequence[float]],
                  start: datetime, end: datetime, model: str = MODEL) -> None:
    """Answers rows with these question embeddings, spread evenly over [start, end)."""
    step = (end - start) / max(len(vectors), 1)
    # Ids fixed by tenant, window and position: the monitor samples by a hash of the id, so
    # random ids would make each run draw a different sample.
    rows = [[tenant, start + i * step, f"{tenant}-{model}-{start:%Y%m%d%H}-{i}", model,
             list(v), 1] for i, v in enumerate(vectors)]
    client.insert("answers", rows, column_names=[
        "tenant", "ts", "id", "embedding_model", "question_embedding", "version"])


def add_corpus(client: Client, tenant: str, vectors: Sequence[Sequence[float]], at: datetime,
               model: str = MODEL) -> None:
    rows = [[tenant, at - timedelta(days=30), f"chunk-{i}", f"doc-{i // 10}", model, list(v), 1]
            for i, v in enumerate(vectors)]
    client.insert("corpus_sample", rows, column_names=[
        "tenant", "ts", "id", "document_id", "embedding_model", "embedding", "version"])


def _fill(templates: Sequence[str], verbs: Sequence[str], things: Sequence[str]) -> list[str]:
    return [t.format(v=v, f=f) for t, v, f in itertools.product(templates, verbs, things)]


_COOK_VERBS = ["roast", "grill", "bake", "boil", "steam", "fry"]
_COOK_FOODS = ["chicken", "salmon", "potatoes", "broccoli", "bread", "rice", "tofu", "carrots",
               "lamb", "mushrooms"]
_MONEY_VERBS = ["refinance", "close", "open", "transfer", "pay off", "report"]
_MONEY_THINGS = ["mortgage", "savings account", "credit card", "pension", "student loan",
                 "brokerage account", "car loan", "retirement account", "bond", "invoice"]

# 360 questions each: what users of a cooking assistant ask, and what they ask once the
# assistant is (mis)used for personal finance.
COOKING_QUESTIONS = _fill([
    "How long should I {v} {f}?",
    "What is the best way to {v} {f}?",
    "Can I {v} {f} without a recipe?",
    "At what temperature do you {v} {f}?",
    "Which spices go well when you {v} {f}?",
    "Why does my {f} burn when I {v} it?",
], _COOK_VERBS, _COOK_FOODS)
FINANCE_QUESTIONS = _fill([
    "How do I {v} my {f}?",
    "What are the tax rules when I {v} a {f}?",
    "Should I {v} my {f} this year?",
    "What fees apply if I {v} a {f}?",
    "How is interest calculated when I {v} a {f}?",
    "Can my bank {v} my {f}?",
], _MONEY_VERBS, _MONEY_THINGS)
# The cooking assistant's corpus: passages of recipes and kitchen advice.
COOKING_PASSAGES = _fill([
    "To {v} {f}, heat the pan or oven first and season generously with salt and pepper.",
    "Most cooks {v} {f} until golden; a thermometer tells you when it is done.",
    "If you {v} {f} too long it dries out, so rest it for a few minutes before serving.",
    "A simple recipe: {v} the {f} with olive oil, garlic and fresh herbs.",
], _COOK_VERBS, _COOK_FOODS)
