"""The toxicity lexicon, benign-idiom masking and sentence segments."""

from __future__ import annotations

import pytest

from llmops_safety.domain.toxicity import lexicon_score, mask_benign, segments

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "rule"), [
    ("You are such an idiot.", "lexicon.en.insult.directed"),
    ("I'm going to hurt you.", "lexicon.en.threat.harm"),
    ("Watch your back.", "lexicon.en.threat.watch_back"),
    ("이 병신아", "lexicon.ko.profanity"),
    ("죽여버릴 거야", "lexicon.ko.threat"),
    ("너 진짜 멍청하다", "lexicon.ko.insult.directed"),
])
def test_toxic_texts_score_high(text: str, rule: str) -> None:
    score, findings = lexicon_score(text)
    assert score >= 0.8
    assert rule in [f.rule for f in findings]


@pytest.mark.parametrize("text", [
    "프로젝트의 시발점은 작년 회의였다.",  # 시발점 = starting point
    "불이 꺼져 있어서 어두워요.",  # the light is off
    "이 음식 맛이 죽여준다.",  # this tastes killer
    "Kill the process and restart the pod.",
    "Have a nice weekend.",
])
def test_benign_texts_score_zero(text: str) -> None:
    assert lexicon_score(text) == (0.0, [])


def test_bare_mild_word_stays_below_block() -> None:
    score, findings = lexicon_score("바보 같은 실수를 했어요.")
    assert score == 0.5 and [f.rule for f in findings] == ["lexicon.ko.insult.mild"]


def test_span_of_a_finding() -> None:
    text = "Well. You are a moron, frankly."
    (f,) = lexicon_score(text)[1]
    assert text[f.start:f.end] == "You are a moron"


def test_masking_keeps_length_and_blanks_idioms() -> None:
    text = "Kill the process with kill -9, this bug is killing me."
    masked = mask_benign(text)
    assert len(masked) == len(text)
    assert "kill" not in masked.lower() and "process" in masked


def test_segments_split_sentences_and_cap_length() -> None:
    text = "First one. Second one!\nThird " + "x" * 900
    spans = segments(text, max_chars=400)
    assert [text[a:b] for a, b in spans[:2]] == ["First one.", " Second one!"]
    assert all(b - a <= 400 for a, b in spans)
    assert spans[-1][1] == len(text)
    assert segments("") == [] and segments("\n\n") == []
