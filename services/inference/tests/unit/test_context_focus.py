"""The question-focused context: the passages' lines that bear on the question, within budget."""

from __future__ import annotations

import pytest

from llmops_inference.domain.context import estimate_tokens
from llmops_inference.domain.focus import focus, groups, units
from llmops_inference.domain.model import Passage

pytestmark = pytest.mark.unit

VACATION = """Vacation and leave policy

Every full-time employee accrues 25 days of paid vacation per calendar year, credited
monthly. Part-time employees accrue vacation in proportion to their hours.

Carry-over

Up to 5 unused vacation days can be carried over into the next year. Carried-over days
expire on March 31 if they are not taken.

Sick leave

Sick leave is separate from vacation and is not capped."""

FAQ = """IT helpdesk FAQ

How do I reach the IT helpdesk?

The helpdesk is open from 8:00 to 19:00 on working days.

When do I get a new laptop?

Laptops are replaced every four years."""

SECURITY = """Laptops

Laptops lock automatically after 5 minutes. Report a lost or stolen laptop to the security
team within one hour so that it can be wiped remotely.

Passwords

Passwords must be at least 14 characters long."""

KOREAN = "복리후생 안내\n\n식대는 하루 1만 원이 지원됩니다. 통신비는 월 3만 원까지 지원됩니다."


def passage(marker: int, doc: str, text: str) -> Passage:
    return Passage(marker, doc, f"{doc}#0", doc.split(".")[0], text, 1.0 / marker)


def test_units_join_wrapped_lines_and_keep_headings_apart() -> None:
    got = units(VACATION)
    assert got[0] == "Vacation and leave policy"
    assert got[1] == ("Every full-time employee accrues 25 days of paid vacation per calendar "
                      "year, credited monthly.")
    assert "Carry-over" in got and got[got.index("Carry-over") + 1].startswith("Up to 5 unused")
    assert units("- first item\n- second item") == ["- first item", "- second item"]
    assert units("식대는 하루 1만 원입니다。통신비는 월 3만 원입니다") == [
        "식대는 하루 1만 원입니다。", "통신비는 월 3만 원입니다"]


def test_a_faq_question_and_a_heading_travel_with_the_line_after_them() -> None:
    assert groups(FAQ) == [
        "IT helpdesk FAQ: How do I reach the IT helpdesk? The helpdesk is open from 8:00 to "
        "19:00 on working days.",
        "When do I get a new laptop? Laptops are replaced every four years."]
    assert groups("Contact\n\n")[-1] == "Contact"  # a trailing heading is kept, not lost


def test_only_the_lines_that_answer_are_shown_with_markers_kept() -> None:
    passages = [passage(1, "vacation.md", VACATION), passage(2, "faq.md", FAQ),
                passage(3, "security.md", SECURITY)]
    shown = focus("How many unused vacation days can be carried over?", passages, 60)
    assert [p.marker for p in shown] == [1]  # the others share nothing with the question
    text = shown[0].text
    assert "Carry-over: Up to 5 unused vacation days can be carried over" in text
    assert "Sick leave" not in text and "helpdesk" not in text
    assert text.startswith("\u2026 ") or text.startswith("Vacation")
    assert shown[0].document_id == "vacation.md" and shown[0].chunk_id == "vacation.md#0"


def test_the_answer_in_a_lower_passage_is_shown_and_the_gaps_are_marked() -> None:
    passages = [passage(1, "faq.md", FAQ), passage(2, "security.md", SECURITY)]
    shown = focus("What should I do if my laptop is stolen?", passages, 120)
    by_marker = {p.marker: p.text for p in shown}
    assert "Report a lost or stolen laptop to the security team" in by_marker[2]
    assert "Passwords must" not in by_marker[2]
    # The best passage always keeps its best unit, here the laptop question of the FAQ.
    assert by_marker[1] == ("\u2026 When do I get a new laptop? Laptops are replaced every "
                            "four years.")


def test_the_budget_holds_and_zero_turns_focus_off() -> None:
    passages = [passage(1, "vacation.md", VACATION), passage(2, "security.md", SECURITY)]
    question = "How many vacation days and sick days do I get, and when do they expire?"
    for budget in (20, 40, 80):
        shown = focus(question, passages, budget)
        lead = min(estimate_tokens(g) for g in groups(VACATION))
        assert sum(estimate_tokens(p.text.replace("\u2026", "")) for p in shown) <= budget + lead
    assert focus(question, passages, 0) == passages
    assert focus(question, [], 50) == []


def test_a_question_sharing_nothing_keeps_the_best_passage_s_first_line() -> None:
    shown = focus("Quelle est la capitale?", [passage(1, "vacation.md", VACATION)], 100)
    assert len(shown) == 1
    assert shown[0].text == "Vacation and leave policy: Every full-time employee accrues 25 " \
        "days of paid vacation per calendar year, credited monthly. \u2026"


def test_a_korean_question_gets_its_korean_sentence() -> None:
    shown = focus("통신비는 얼마나 지원되나요?", [passage(1, "benefits-ko.md", KOREAN)], 30)
    assert "통신비는 월 3만 원까지 지원됩니다." in shown[0].text
    assert "식대" not in shown[0].text
