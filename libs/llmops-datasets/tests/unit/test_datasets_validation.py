"""Parsing and validation: every problem names its line and field; the upload is refused whole
unless skip_invalid is set, which records what was skipped."""

from __future__ import annotations

import json

import pytest

from llmops_datasets import BuildSettings, InvalidDataset, WhitespaceCounter, build_jsonl
from llmops_datasets.dedupe import NearDuplicates

pytestmark = pytest.mark.unit

COUNTER = WhitespaceCounter()


def jsonl(*rows: object) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def settings(**kw: object) -> BuildSettings:
    kw.setdefault("near", NearDuplicates(threshold=None))
    return BuildSettings(**kw)  # type: ignore[arg-type]


def refused(data: bytes, **kw: object) -> InvalidDataset:
    with pytest.raises(InvalidDataset) as info:
        build_jsonl(data, settings(**kw), COUNTER)
    return info.value


def test_alpaca_prompt_response_and_sharegpt_normalise_to_messages() -> None:
    built = build_jsonl(jsonl(
        {"instruction": "Summarise", "input": "The policy text.", "output": "Short.",
         "system": "Be brief."},
        {"prompt": "How many days?", "response": "25 days."},
    ), settings(kind="instruction", validation_fraction=0), COUNTER)
    assert built.kind == "instruction"
    assert built.files["train.jsonl"] == [
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Summarise\n\nThe policy text."},
                      {"role": "assistant", "content": "Short."}]},
        {"messages": [{"role": "user", "content": "How many days?"},
                      {"role": "assistant", "content": "25 days."}]}]
    chat = build_jsonl(jsonl({"conversations": [{"from": "human", "value": "Hi"},
                                                {"from": "gpt", "value": "Hello!"}]}),
                       settings(validation_fraction=0), COUNTER)
    assert chat.kind == "chat"  # detected from the first line (kind auto)
    assert chat.files["train.jsonl"] == [{"messages": [{"role": "user", "content": "Hi"},
                                                       {"role": "assistant", "content": "Hello!"}]}]


def test_every_problem_names_line_and_field() -> None:
    exc = refused(jsonl(
        {"messages": [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "ok"}]},
        "{not json",
        {"messages": [{"role": "user", "content": "q"}, {"role": "robot", "content": "a"}]},
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]},
        "",  # blank lines are ignored but still counted
        {"messages": [{"role": "user", "content": "only a question"}]},
        {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]},
        {"text": "no messages"},
    ), kind="chat")
    assert exc.reason == "INVALID_RECORDS" and exc.total == 6
    assert [(p.line, p.field, p.reason) for p in exc.problems] == [
        (2, "", "INVALID_JSON"),
        (3, "messages[1].role", "UNKNOWN_ROLE"),
        (4, "messages[0].content", "EMPTY_FIELD"),
        (6, "messages", "NO_ASSISTANT_TURN"),
        (7, "messages[0].content", "NOT_A_STRING"),
        (8, "messages", "MISSING_FIELD"),
    ]
    assert str(exc.problems[1]) == ("line 3, field messages[1].role: UNKNOWN_ROLE: role must be "
                                    "one of system, user, assistant")


def test_instruction_fields_and_the_error_limit() -> None:
    rows = [{"instruction": "", "output": "x"}] * 30 + [{"instruction": "q"}]
    exc = refused(jsonl(*rows), kind="instruction", max_errors=5)
    assert exc.total == 31 and len(exc.problems) == 5
    assert {(p.field, p.reason) for p in exc.problems} == {("instruction", "EMPTY_FIELD")}
    last = refused(jsonl({"instruction": "q"}), kind="instruction").problems
    assert [(p.line, p.field, p.reason) for p in last] == [(1, "output", "MISSING_FIELD")]


def test_too_long_counts_tokens_over_max_seq_len() -> None:
    long = " ".join(["word"] * 50)
    exc = refused(jsonl({"prompt": "short", "response": "fine"},
                        {"prompt": "q", "response": long}), kind="instruction", max_seq_len=40)
    [p] = exc.problems
    assert (p.line, p.field, p.reason) == (2, "prompt+response", "TOO_LONG")
    # The chat template's system message and role markers count too.
    assert p.message.startswith("6") and "max_seq_len is 40" in p.message
    assert "word" not in p.message  # never the content


def test_skip_invalid_keeps_the_good_lines_and_records_the_skipped() -> None:
    built = build_jsonl(jsonl({"prompt": "a", "response": "b"}, "[1]",
                              {"prompt": "c", "response": ""}),
                        settings(kind="instruction", skip_invalid=True, validation_fraction=0),
                        COUNTER)
    assert [(p.line, p.field, p.reason) for p in built.skipped] == [
        (2, "", "NOT_AN_OBJECT"), (3, "response", "EMPTY_FIELD")]
    assert built.manifest["counts"]["skipped"] == 2 and built.manifest["counts"]["train"] == 1
    assert built.manifest["validation"]["skipped"][1] == {
        "line": 3, "field": "response", "reason": "EMPTY_FIELD", "message": "'response' is empty"}


def test_nothing_valid_or_unknown_shape_is_refused_with_a_reason() -> None:
    assert refused(jsonl({"a": 1}, {"b": 2})).reason == "UNKNOWN_KIND"
    assert refused(jsonl("[", "{"), kind="text", skip_invalid=True).reason == "EMPTY_DATASET"
    assert refused(b"\xff\xfe\n", kind="text").problems[0].reason == "NOT_UTF8"


def test_eval_sets_keep_their_fields_and_are_not_split() -> None:
    built = build_jsonl(jsonl(
        {"id": "en-a01", "lang": "en", "question": "How many days?", "document": "v.md",
         "facts": ["25 days", "25"]},
        {"id": "en-x01", "question": "Dental provider?", "document": None, "facts": []},
    ), settings(kind="eval", validation_fraction=0.5), COUNTER)
    assert list(built.files) == ["records.jsonl"]
    assert built.files["records.jsonl"][1] == {"id": "en-x01", "question": "Dental provider?",
                                               "facts": [], "document": None, "lang": "en"}
    exc = refused(jsonl({"id": "a", "question": "q", "document": "d.md", "facts": []},
                        {"id": "b", "question": "q", "facts": [""]},
                        {"id": "c", "question": "q", "facts": []},
                        {"id": "c", "question": "other", "facts": []}), kind="eval")
    assert [(p.line, p.field, p.reason) for p in exc.problems] == [
        (1, "facts", "EMPTY_FIELD"), (2, "facts", "BAD_FACTS"), (4, "id", "DUPLICATE_ID")]


def test_problems_never_echo_the_content() -> None:
    exc = refused(jsonl(
        {"messages": [{"role": "kim@example.com", "content": "x"}, {"role": "assistant", "content": "a"}]},
        '{"prompt": "call 010-1234-5678", "response": ',
        {"messages": [{"role": "user", "content": 4111111111111111},
                      {"role": "assistant", "content": "a"}]},
    ), kind="auto")
    text = "\n".join(str(p) for p in exc.problems)
    assert [p.reason for p in exc.problems] == ["UNKNOWN_ROLE", "INVALID_JSON", "NOT_A_STRING"]
    for secret in ("kim@example.com", "010-1234-5678", "4111111111111111"):
        assert secret not in text
