"""Where to put the weak-retrieval threshold: best cosine similarity of questions to the
sample corpus, with the shipped embedding model (all-MiniLM-L6-v2).

Questions the corpus answers should score above the threshold, questions it cannot answer
below. The corpus is cut into ~200-token windows (about the ingestion chunks); each question's
best similarity over all windows is printed, then the gap between the two groups and the
midpoint, which is LLMOPS_OBSERVABILITY_WEAK_RETRIEVAL_THRESHOLD's default.

    uv run python bench/weak_retrieval_threshold.py
"""

from __future__ import annotations

import re
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "samples" / "corpus"
ANSWERED = (
    "How many days of paid vacation does a full-time employee get per year?",
    "My laptop was stolen, who do I tell?",
    "What is the daily meal allowance on business trips?",
    "How do I reset my password?",
    "Can unused vacation days be carried over to next year?",
    "Which expenses need a receipt?",
)
OFF_TOPIC = (
    "What is the boiling point of tungsten?",
    "Who won the football world cup in 1970?",
    "Give me a recipe for sourdough bread.",
    "How far is the moon from the earth?",
    "What is the capital of Australia?",
    "How do I change a bicycle tyre?",
)


def windows(text: str, words: int = 150, step: int = 120) -> list[str]:
    tokens = re.sub(r"<[^>]+>", " ", text).split()
    return [" ".join(tokens[i:i + words]) for i in range(0, max(len(tokens) - step, 1), step)]


def main() -> None:
    from sentence_transformers import SentenceTransformer

    from llmops_embedding.settings import bundled_model_dir

    model = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    chunks = [w for p in sorted(CORPUS.iterdir()) for w in windows(p.read_text())]
    corpus = model.encode(chunks, normalize_embeddings=True)

    def best(questions: tuple[str, ...]) -> list[float]:
        q = model.encode(list(questions), normalize_embeddings=True)
        return [float(s) for s in (q @ corpus.T).max(axis=1)]

    answered, off = best(ANSWERED), best(OFF_TOPIC)
    for label, qs, scores in (("answered", ANSWERED, answered), ("off-topic", OFF_TOPIC, off)):
        for question, score in zip(qs, scores, strict=True):
            print(f"{label:10} {score:.3f}  {question}")
    low, high = max(off), min(answered)
    print(f"chunks={len(chunks)} off-topic max={low:.3f} answered min={high:.3f} "
          f"midpoint={(low + high) / 2:.3f}")


if __name__ == "__main__":
    main()
