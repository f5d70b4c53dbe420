"""The shipped evaluation set (samples/eval/questions.jsonl) and the corpus it asks about.

The loading, fact matching and metrics live in llmops_kit.evaluation.questions (one
implementation for the benchmarks and `llmops eval`); this module adds the repository's paths.
"""

from __future__ import annotations

from pathlib import Path

from llmops_kit.evaluation import questions as _questions
from llmops_kit.evaluation.questions import (
    HALVES,
    LANGUAGES,
    EvalQuestion,
    Outcome,
    Scores,
    by_language,
    half,
    holds_fact,
    normalise,
    plain_text,
    rank_of,
    score,
)

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "samples" / "eval" / "questions.jsonl"
# Questions written from the documents after the answer rules were tuned, never used to tune
# them: the honest figure (samples/eval/README.md, "Held-out set").
HELD_OUT = REPO / "samples" / "eval" / "held-out.jsonl"
CORPUS = REPO / "samples" / "corpus"

__all__ = ["CORPUS", "HALVES", "HELD_OUT", "LANGUAGES", "QUESTIONS", "EvalQuestion", "Outcome", "Scores",
           "by_language", "half", "holds_fact", "load", "normalise", "plain_text", "rank_of",
           "score"]


def load(path: Path = QUESTIONS) -> list[EvalQuestion]:
    return _questions.load(path)
