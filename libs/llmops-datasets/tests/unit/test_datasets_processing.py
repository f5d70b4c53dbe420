"""Duplicates (exact and near, by threshold), PII redaction, the split, statistics and the
content id."""

from __future__ import annotations

import json
import random

import pytest

from llmops_datasets import BuildSettings, NearDuplicates, WhitespaceCounter, build_jsonl, build_texts
from llmops_datasets.dedupe import dedupe, normalise
from llmops_datasets.split import split, token_stats

pytestmark = pytest.mark.unit

COUNTER = WhitespaceCounter()
BASE = ("Employees receive twenty five days of paid vacation per year and may carry five unused "
        "days into the next year until the end of March")


def pair(q: str, a: str) -> dict[str, str]:
    return {"prompt": q, "response": a}


def data(rows: list[dict[str, str]]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def test_exact_duplicates_ignore_case_whitespace_and_width() -> None:
    assert normalise("  \uff28ello\tWORLD \n") == "hello world"
    result = dedupe(["Hello world", "hello   WORLD", "\uff28ello world", "other"], NearDuplicates(None))
    assert result.kept == [0, 3] and result.exact == {1: 0, 2: 0} and result.near == {}


def test_near_duplicates_follow_the_threshold() -> None:
    near = BASE.replace("March", "April")  # one word of 27 changed: Jaccard of shingles ~0.86
    texts = [BASE, near, "A completely different sentence about the office printers and coffee."]
    strict = dedupe(texts, NearDuplicates(threshold=0.95))
    loose = dedupe(texts, NearDuplicates(threshold=0.6))
    assert strict.kept == [0, 1, 2] and strict.near == {}
    assert loose.kept == [0, 2] and loose.near == {1: 0}
    assert dedupe(texts, NearDuplicates(threshold=None)).kept == [0, 1, 2]


def test_build_reports_the_removed_duplicates_by_line() -> None:
    rows = [pair("How many vacation days?", BASE), pair("How many vacation days?", BASE),
            pair("how many  vacation days?", BASE.replace("March", "April")),
            pair("Where is the printer?", "On the second floor next to the kitchen.")]
    built = build_jsonl(data(rows), BuildSettings(kind="instruction", validation_fraction=0,
                                                  near=NearDuplicates(threshold=0.7)), COUNTER)
    dd = built.manifest["dedupe"]
    assert (dd["exact_removed"], dd["near_removed"], dd["threshold"], dd["num_perm"]) == (1, 1, 0.7, 128)
    assert dd["removed"] == [{"line": 2, "duplicate_of_line": 1, "type": "exact"},
                             {"line": 3, "duplicate_of_line": 1, "type": "near"}]
    assert [r["messages"][0]["content"] for r in built.files["train.jsonl"]] == [
        "How many vacation days?", "Where is the printer?"]


def test_pii_is_redacted_in_every_string_field() -> None:
    rows = [{"instruction": "Mail kim@example.com", "input": "call 010-1234-5678",
             "output": "Card 4111 1111 1111 1111 noted", "system": "ip 192.168.0.1"}]
    built = build_jsonl(data(rows), BuildSettings(kind="instruction", validation_fraction=0), COUNTER)
    [record] = built.files["train.jsonl"]
    assert [m["content"] for m in record["messages"]] == [
        "ip [IP_ADDRESS]", "Mail [EMAIL]\n\ncall [PHONE]", "Card [CREDIT_CARD] noted"]
    assert built.manifest["pii"] == {"redacted": True, "records_with_pii": 1, "findings": {
        "pii.credit_card": 1, "pii.email": 1, "pii.ip_address": 1, "pii.phone": 1}}
    kept = build_jsonl(data(rows), BuildSettings(kind="instruction", validation_fraction=0,
                                                 redact_pii=False), COUNTER)
    assert "kim@example.com" in kept.files["train.jsonl"][0]["messages"][1]["content"]
    assert kept.id != built.id  # the setting is part of the content id


def test_split_is_deterministic_and_independent_of_order() -> None:
    records = [{"text": f"record number {i}"} for i in range(400)]
    train, val = split(records, 0.2, seed=7)
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    _, val2 = split(shuffled, 0.2, seed=7)
    assert {r["text"] for r in val} == {r["text"] for r in val2}
    assert len(train) + len(val) == 400 and 60 <= len(val) <= 100  # ~80 expected
    _, other_seed = split(records, 0.2, seed=8)
    assert {r["text"] for r in other_seed} != {r["text"] for r in val}
    assert split(records[:2], 0.01, seed=7)[1] != []  # never an empty validation side
    assert split(records, 0.0, seed=7) == (records, [])


def test_token_stats() -> None:
    assert token_stats([10, 1, 4, 7, 3], 8, over_length=2) == {
        "count": 5, "total": 25, "min": 1, "mean": 5.0, "p50": 4.0, "p95": 9.4, "max": 10,
        "max_seq_len": 8, "over_length": 2}
    built = build_jsonl(data([pair("a b", "c d e"), pair("x", "y")]),
                        BuildSettings(kind="instruction", validation_fraction=0), COUNTER)
    stats = built.manifest["token_stats"]
    # chat template: "<|im_start|>system\nYou are ... Face<|im_end|>\n" is 13 words, then
    # "<|im_start|>user\na b<|im_end|>\n<|im_start|>assistant\nc d e<|im_end|>\n" is 7
    assert (stats["min"], stats["max"], stats["count"]) == (17, 20, 2)


def test_content_id_is_stable_and_settings_change_it() -> None:
    rows = data([pair("q1", "a1"), pair("q2", "a2"), pair("q3", "a3")])
    first = build_jsonl(rows, BuildSettings(kind="instruction"), COUNTER)
    again = build_jsonl(rows + b"\n\n", BuildSettings(kind="auto"), COUNTER)
    assert first.id == again.id and first.id.startswith("ds-") and len(first.id) == 19
    # Pinned: the id of this content must not change between releases (readers key on it).
    assert first.id == "ds-f352310013ef6277"
    assert build_jsonl(rows, BuildSettings(kind="instruction", seed=1), COUNTER).id != first.id
    assert build_jsonl(rows, BuildSettings(kind="instruction", max_seq_len=4096), COUNTER).id != first.id
    swapped = data([pair("q2", "a2"), pair("q1", "a1"), pair("q3", "a3")])
    assert build_jsonl(swapped, BuildSettings(kind="instruction"), COUNTER).id != first.id


def test_documents_become_text_windows_of_max_seq_len() -> None:
    doc = " ".join(f"w{i}" for i in range(25))
    built = build_texts([("a.md", doc), ("b.md", "short text here"), ("c.md", "  ")],
                        BuildSettings(kind="text", max_seq_len=10, validation_fraction=0,
                                      near=NearDuplicates(None)),
                        COUNTER, source={"type": "documents"})
    texts = [r["text"] for r in built.files["train.jsonl"]]
    assert texts == [" ".join(f"w{i}" for i in range(0, 10)), " ".join(f"w{i}" for i in range(10, 20)),
                     " ".join(f"w{i}" for i in range(20, 25)), "short text here"]
    assert built.manifest["token_stats"]["over_length"] == 1 and built.kind == "text"
    assert built.manifest["counts"]["input_lines"] == 3
