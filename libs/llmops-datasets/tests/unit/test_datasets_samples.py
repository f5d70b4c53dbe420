"""The shipped datasets: samples/train (fine-tuning) and the eval set from samples/eval build
cleanly with the default settings and the SmolLM2 tokenizer."""

from __future__ import annotations

import json

import pytest

from llmops_datasets import BuildSettings, HFTokenCounter, build_jsonl
from llmops_datasets.tokens import default_tokenizer_dir
from llmops_kit.settings import llmops_home
from llmops_kit.testing import REPO

pytestmark = pytest.mark.unit

TRAIN = REPO / "samples" / "train" / "policies-qa.jsonl"
QUESTIONS = REPO / "samples" / "eval" / "questions.jsonl"


@pytest.fixture(scope="module")
def counter() -> HFTokenCounter:
    return HFTokenCounter.load(default_tokenizer_dir(llmops_home()))


def test_policies_qa_builds_with_no_invalid_line(counter: HFTokenCounter) -> None:
    rows = [json.loads(line) for line in TRAIN.read_text().splitlines()]
    assert 100 <= len(rows) <= 200
    corpus = {p.name for p in (REPO / "samples" / "corpus").iterdir()}
    assert {r["document"] for r in rows if "document" in r} == corpus  # every document covered
    built = build_jsonl(TRAIN.read_bytes(), BuildSettings(kind="instruction", max_seq_len=320),
                        counter)
    counts = built.manifest["counts"]
    assert (counts["invalid"], counts["exact_duplicates"]) == (0, 0)
    assert counts["kept"] == len(rows) - counts["near_duplicates"] and counts["near_duplicates"] <= 2
    assert 8 <= counts["validation"] <= 25  # ~10% of ~139
    stats = built.manifest["token_stats"]
    # Korean takes several tokens a syllable: the longest record is ~300 tokens, most ~60.
    assert stats["max"] <= 320 and stats["p50"] <= 80 and stats["over_length"] == 0
    # The one e-mail address in the answers is redacted.
    assert built.manifest["pii"]["findings"] == {"pii.email": 1}


def test_the_eval_set_builds_from_samples_eval(counter: HFTokenCounter) -> None:
    built = build_jsonl(QUESTIONS.read_bytes(), BuildSettings(kind="eval"), counter)
    records = built.files["records.jsonl"]
    assert len(records) == 54 and built.manifest["counts"]["invalid"] == 0
    assert sum(r["document"] is None for r in records) == 10
    assert records[0] == {"id": "en-a01", "lang": "en", "document": "vacation-policy.md",
                          "question": "How many days of paid vacation does a full-time employee "
                                      "get per year?", "facts": ["25 days", "25"]}
