"""The embedding models a deployment can choose, side by side: retrieval recall on English and
Korean questions over the sample corpus, and encoding speed.

Each model loads through the embedding service's own loader (llmops_embedding.models), offline.
Questions: --questions (JSON {"questions": [{"lang", "q", "doc"}]}), by default the list in
services/embedding/tests/data/retrieval_questions.json. Chunks: word windows of the corpus
files (--words, 15 words overlap), so each file gives several chunks. recall@k counts a
question when its document is among the k best distinct documents (best chunk per document),
by cosine over the chunks: the vector half of search, no keyword half.

    uv run python bench/embedding_models.py [--models minilm,muse] [--speed-texts 500] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_QUESTIONS = ROOT / "services/embedding/tests/data/retrieval_questions.json"


def corpus_chunks(words: int, overlap: int = 15) -> tuple[list[str], list[str]]:
    chunks, docs = [], []
    for path in sorted((ROOT / "samples" / "corpus").iterdir()):
        text = path.read_text()
        if path.suffix == ".html":
            text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", text, flags=re.S)
            text = re.sub(r"<[^>]+>", " ", text)
        tokens = text.split()
        for start in range(0, len(tokens), words - overlap):
            chunks.append(" ".join(tokens[start : start + words]))
            docs.append(path.name)
            if start + words >= len(tokens):
                break
    return chunks, docs


async def measure(key: str, questions: list[dict[str, str]], words: int,
                  speed_texts: int) -> dict[str, Any]:
    from llmops_embedding.models import load_embedder
    from llmops_embedding.settings import EncoderSettings

    t0 = time.perf_counter()
    embedder = await load_embedder(EncoderSettings(model=key))
    load_s = time.perf_counter() - t0
    chunks, docs = corpus_chunks(words)
    c = np.asarray(await embedder.embed(chunks))
    q = np.asarray(await embedder.embed([item["q"] for item in questions]))
    recall: dict[str, dict[str, float]] = {}
    for lang in sorted({item["lang"] for item in questions}):
        rows = [i for i, item in enumerate(questions) if item["lang"] == lang]
        for k in (1, 3, 5):
            hits = 0
            for i in rows:
                ranked = list(dict.fromkeys(docs[j] for j in np.argsort(-(q[i] @ c.T))))
                hits += questions[i]["doc"] in ranked[:k]
            recall.setdefault(lang, {})[f"recall@{k}"] = round(hits / len(rows), 3)
        recall[lang]["questions"] = len(rows)
    texts = (chunks * (speed_texts // len(chunks) + 1))[:speed_texts]
    t0 = time.perf_counter()
    await embedder.embed(texts)
    rate = speed_texts / (time.perf_counter() - t0)
    return {"model": embedder.model_name, "dimensions": embedder.dimensions,
            "backend": embedder.backend, "load_s": round(load_s, 2),
            "chunks": len(chunks), "texts_per_s": round(rate, 1), "recall": recall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="minilm,muse")
    p.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    p.add_argument("--words", type=int, default=60)
    p.add_argument("--speed-texts", type=int, default=500)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    questions = json.loads(args.questions.read_text())["questions"]
    results = [asyncio.run(measure(key, questions, args.words, args.speed_texts))
               for key in args.models.split(",")]
    if args.json:
        json.dump(results, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return
    for r in results:
        print(f"{r['model']} ({r['dimensions']} dims, {r['backend']}): loads in {r['load_s']} s, "
              f"{r['texts_per_s']} chunks/s over {args.speed_texts} chunks")
        for lang, scores in r["recall"].items():
            line = ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if k != "questions")
            print(f"  {lang} ({scores['questions']} questions): {line}")


if __name__ == "__main__":
    main()
