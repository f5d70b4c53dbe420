"""Streamed output: PII split across two (or three) checked segments is still caught, at every
cut position, with the real PII detectors behind a fake guard that reports its spans."""

from __future__ import annotations

import pytest

from llmops_inference.domain.model import SafetyResult, Verdict
from llmops_inference.domain.streaming import OutputWindow
from llmops_pii import LABELS, redact_pii

pytestmark = pytest.mark.unit

# Long enough that the held-back window, not the text's length, decides what is released.
LEAD = "The finance team confirmed the reimbursement details for the last quarter today. "
SAMPLES = [
    ("card", "4111 1111 1111 1111", "[CREDIT_CARD]"),
    ("card-dashes", "5500-0000-0000-0004", "[CREDIT_CARD]"),
    ("iban", "DE89 3704 0044 0532 0130 00", "[IBAN]"),
    ("phone-e164", "+1 415 555 2671", "[PHONE]"),
    ("phone-kr", "010-1234-5678", "[PHONE]"),
    ("email", "jane.doe@example.com", "[EMAIL]"),
]
TAIL = " is the one on file for refunds, so please keep it handy."


class PiiGuard:
    """Redacts every PII category, reporting where (as the safety adapter does); records calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def check(self, text: str, direction: str) -> SafetyResult:
        self.calls.append(text)
        result = redact_pii(text)
        if not result.findings:
            return SafetyResult(Verdict.ALLOW, text)
        return SafetyResult(Verdict.REDACT, result.text,
                            tuple(sorted({f.category for f in result.findings})),
                            tuple((f.start, f.end, LABELS[f.category]) for f in result.findings))

    async def redact(self, text: str) -> str:
        return redact_pii(text).text


async def stream(segments: list[str], holdback: int = 48) -> list[str]:
    window = OutputWindow(PiiGuard(), holdback)
    out = []
    for i, segment in enumerate(segments):
        text, verdict = await window.push(segment, final=i == len(segments) - 1)
        assert verdict is not Verdict.BLOCK
        out.append(text)
    return out


def leaks(released: list[str], pii: str) -> bool:
    """Any 4+ character piece of the PII (a card group, a mail's local part) shown raw."""
    shown = "".join(released)
    parts = [p for p in pii.replace("-", " ").replace("@", " ").replace(".", " ").split() if len(p) >= 4]
    return any(p in shown for p in parts)


@pytest.mark.parametrize(("name", "pii", "label"), SAMPLES, ids=[s[0] for s in SAMPLES])
async def test_pii_split_in_two_at_every_position_is_redacted(name: str, pii: str, label: str
                                                               ) -> None:
    text = LEAD + pii + TAIL
    expected = LEAD + label + TAIL
    start = len(LEAD)
    for cut in range(start - 3, start + len(pii) + 3):
        released = await stream([text[:cut], text[cut:]])
        assert "".join(released) == expected, f"cut at {cut - start}"
        assert not leaks(released, pii), f"cut at {cut - start}"


@pytest.mark.parametrize(("name", "pii", "label"), SAMPLES, ids=[s[0] for s in SAMPLES])
async def test_pii_split_in_three_is_redacted(name: str, pii: str, label: str) -> None:
    text = LEAD + pii + TAIL
    start = len(LEAD)
    for a in range(start + 1, start + len(pii)):
        for b in range(a + 1, start + len(pii)):
            released = await stream([text[:a], text[a:b], text[b:]])
            assert "".join(released) == LEAD + label + TAIL, f"cuts at {a - start}, {b - start}"


async def test_without_the_window_a_split_card_leaks() -> None:
    # What the check saw before: each segment alone. "4111 1111" is not a card by itself.
    text = LEAD + "4111 1111 1111 1111" + TAIL
    cut = len(LEAD) + 10
    released = await stream([text[:cut], text[cut:]], holdback=0)
    assert leaks(released, "4111 1111 1111 1111")
    assert not leaks(await stream([text[:cut], text[cut:]]), "4111 1111 1111 1111")


async def test_text_is_released_before_the_end_and_the_tail_is_checked_again() -> None:
    guard = PiiGuard()
    window = OutputWindow(guard, 48)
    first, _ = await window.push(LEAD)
    assert first and LEAD.startswith(first) and len(LEAD) - len(first) >= 48
    assert first.endswith(" ")  # never inside a word: long e-mails are held whole
    rest, verdict = await window.push("Mail jane.doe@example.com now.", final=True)
    assert verdict is Verdict.REDACT
    assert first + rest == LEAD + "Mail [EMAIL] now."
    assert guard.calls[1] == LEAD[len(first):] + "Mail jane.doe@example.com now."


async def test_a_guard_without_spans_holds_redacted_text_until_the_end() -> None:
    class NoSpans(PiiGuard):
        async def check(self, text: str, direction: str) -> SafetyResult:
            r = await super().check(text, direction)
            return SafetyResult(r.verdict, r.redacted_text, r.categories)

    window = OutputWindow(NoSpans(), 48)
    held, verdict = await window.push(LEAD + "Mail jane@example.com or call ")
    assert (held, verdict) == ("", Verdict.REDACT)
    rest, _ = await window.push("+1 415 555 2671 today.", final=True)
    assert rest == LEAD + "Mail [EMAIL] or call [PHONE] today."


async def test_generate_stream_redacts_a_card_cut_by_the_segmenter() -> None:
    """End to end through AnswerService.stream: short segments cut the card at its spaces."""
    from llmops_inference.domain.cache import AnswerCache
    from llmops_inference.domain.model import Answer, Generation, ModelRef, Question, RenderedPrompt
    from llmops_inference.domain.pipeline import AnswerService, Limits

    reply = LEAD + "Pay with 4111 1111 1111 1111 or IBAN DE89 3704 0044 0532 0130 00 today."

    class Generator:
        async def prepare(self, model: ModelRef) -> None: ...

        async def stream(self, *args: object):  # type: ignore[no-untyped-def]
            for ch in reply:  # one character per token: every cut the segmenter makes
                yield ch
            yield Generation(reply, 10, len(reply), "stop")

    class Prompts:
        async def render(self, *args: object) -> RenderedPrompt:
            return RenderedPrompt("p", 1, "s", "u")

    class Models:
        async def resolve(self, alias: str) -> ModelRef:
            return ModelRef("m", 1)

    class Sink:
        async def completed(self, *args: object) -> None: ...

    guard = PiiGuard()
    svc = AnswerService(None, Prompts(), Models(), guard, Generator(), Sink(),  # type: ignore[arg-type]
                        AnswerCache(1, 1), Limits(segment_chars=12))
    q = Question("acme", "pay?", "production", "p", "production", rag=False, top_k=1,
                 max_new_tokens=64)
    items = [x async for x in svc.stream(q)]
    pieces, final = items[:-1], items[-1]
    assert isinstance(final, Answer) and final.output_safety is Verdict.REDACT
    assert "".join(pieces) == final.text == (
        LEAD + "Pay with [CREDIT_CARD] or IBAN [IBAN] today.")
    assert len(pieces) > 2 and not any(leaks([p], "4111 1111 3704 0044") for p in pieces)
    # Segments were short: many checks, the card was cut, yet no check released part of it.
    assert len(guard.calls) > 5
