"""Incremental detokenizing, stop-sequence search, and the chat stream's hold-back."""

from __future__ import annotations

import pytest

from llmops_generation.api.chat import ChatStreamText
from llmops_generation.domain.model import FinishEvent, FinishReason, Token, TokenEvent
from llmops_generation.domain.text import IncrementalDetokenizer, StopSequences

pytestmark = pytest.mark.unit


def byte_decode(ids) -> str:
    """Byte-level tokens, as byte-level BPE decodes them (bad bytes -> U+FFFD)."""
    return bytes(ids).decode("utf-8", errors="replace")


def test_multibyte_character_comes_out_whole() -> None:
    detok = IncrementalDetokenizer(byte_decode, list(b"say "))
    pieces = [detok.push(b) for b in "é€!".encode()]
    # é is 2 bytes, € is 3: the first bytes of each yield nothing.
    assert pieces == ["", "é", "", "", "€", "!"]
    assert "".join(pieces) == "é€!"


def test_flush_returns_what_is_held_back() -> None:
    detok = IncrementalDetokenizer(byte_decode, [])
    assert detok.push("€".encode()[0]) == ""
    assert detok.flush() == "\ufffd"


def test_stop_sequence_found_only_where_new_text_ends_it() -> None:
    stops = StopSequences(["END", "\n\n"])
    assert stops.find("abc", 3) is None
    assert stops.find("abcEN", 1) is None
    assert stops.find("abcEND", 1) == 3
    assert stops.find("x\n\ny", 1) == 1
    # A match that ended before the newly added text was already reported earlier.
    assert stops.find("ENDabcdef", 3) is None
    assert not StopSequences([""])


def test_safe_length_holds_back_a_possible_stop_prefix() -> None:
    stops = StopSequences(["STOP"])
    assert stops.safe_length("hello ST") == 6
    assert stops.safe_length("hello S") == 6
    assert stops.safe_length("hello") == 5


def _tok(text: str, finish: FinishEvent | None = None, special: bool = False) -> TokenEvent:
    return TokenEvent(index=1, token=Token(id=1, text=text, logprob=-1.0, special=special), finish=finish)


def test_chat_stream_never_shows_part_of_a_stop_sequence() -> None:
    stream = ChatStreamText(("<END>",))
    out = [stream.push(_tok(t)) for t in ["Hi", " <", "EN"]]
    finish = FinishEvent(FinishReason.STOP_SEQUENCE, "Hi <END>", 4, 3, None, stop_index=3)
    out.append(stream.push(_tok("D>", finish)))
    assert out == ["Hi", " ", "", ""]
    assert "".join(out) == "Hi "


def test_chat_stream_releases_a_false_alarm() -> None:
    stream = ChatStreamText(("<END>",))
    out = [stream.push(_tok(t)) for t in ["a<", "b"]]
    finish = FinishEvent(FinishReason.EOS_TOKEN, "a<b", 3, 3, None)
    out.append(stream.push(_tok("</s>", finish, special=True)))
    assert out == ["a", "<b", ""]
