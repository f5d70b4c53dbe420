"""Windows for the learned injection detector: whole sentences, original offsets, bounded size."""

from __future__ import annotations

import pytest

from llmops_safety.domain.windows import sentences, windows

pytestmark = pytest.mark.unit


def test_sentences_are_trimmed_spans_of_the_original() -> None:
    text = "  First one.  Second?\n\n세 번째 문장입니다. Last"
    assert [text[a:b] for a, b in sentences(text)] == [
        "First one.", "Second?", "세 번째 문장입니다.", "Last"]


def test_short_sentences_are_grouped_up_to_the_limit() -> None:
    text = "Aaaa aaaa. Bbbb bbbb. Cccc cccc."
    assert [text[a:b] for a, b in windows(text, limit=21)] == ["Aaaa aaaa. Bbbb bbbb.", "Cccc cccc."]
    assert [text[a:b] for a, b in windows(text, limit=100)] == [text]


def test_a_long_sentence_is_cut_at_spaces_and_never_exceeds_the_limit() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    spans = windows(text, limit=50)
    assert all(b - a <= 50 for a, b in spans)
    assert " ".join(text[a:b] for a, b in spans) == text
    assert all(not text[a:b].startswith(" ") and not text[a:b].endswith(" ") for a, b in spans)


def test_empty_and_blank_text_have_no_window() -> None:
    assert windows("") == [] and windows("   \n ") == []
