"""samples/eval/demo-en.jsonl, the set `make demo` evaluates on, stays a copy of 8 lines of the
full evaluation set (so its facts and documents are checked there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops_kit.evaluation.questions import parse

pytestmark = pytest.mark.unit

EVAL = Path(__file__).resolve().parents[2] / "samples" / "eval"


def test_the_demo_set_is_eight_english_lines_of_the_full_set() -> None:
    full = {json.loads(line)["id"]: line
            for line in (EVAL / "questions.jsonl").read_text(encoding="utf-8").splitlines()}
    text = (EVAL / "demo-en.jsonl").read_text(encoding="utf-8")
    questions = parse(text, "demo-en.jsonl")
    assert len(questions) == 8 and {q.lang for q in questions} == {"en"}
    assert [q.answerable for q in questions].count(False) == 1
    assert all(full[json.loads(line)["id"]] == line for line in text.splitlines())
