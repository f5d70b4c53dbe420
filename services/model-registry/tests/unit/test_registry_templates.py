"""Prompt templates: validation, declared variables, strict and sandboxed rendering."""

from __future__ import annotations

import pytest

from llmops_registry.domain import templates
from llmops_registry.domain.errors import BadRequest
from llmops_registry.domain.seed import RAG_TEMPLATE
from llmops_registry.domain.templates import TemplateDocument

pytestmark = pytest.mark.unit


def render_reason(template: str, **variables: str) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        templates.render(template, variables)
    return info.value


def test_variables_are_derived_from_the_template() -> None:
    text = "{% set greeting = 'Hi' %}{{ greeting }} {{ name }}, {% for d in documents %}" \
           "{{ d.id }}{{ sep }}{% endfor %}{{ extra | default('') }}"
    assert templates.analyse(text, 10_000) == ("documents", "extra", "name", "sep")


@pytest.mark.parametrize(("template", "line", "fragment"), [
    ("ok\n{% for x in %}\n{% endfor %}", 2, "Expected an expression"),
    ("line 1\nline 2\n{{ x | no_such_filter }}", 3, "No filter named 'no_such_filter'"),
    ("{% if x %}never closed", 1, "endif"),
    ("a\nb\nc\n{{ }}", 4, "Expected an expression"),
])
def test_syntax_errors_name_the_line(template: str, line: int, fragment: str) -> None:
    with pytest.raises(BadRequest) as info:
        templates.analyse(template, 10_000)
    assert info.value.reason == "BAD_TEMPLATE"
    assert info.value.message.startswith(f"line {line}:") and fragment in info.value.message


def test_empty_and_oversized_templates() -> None:
    with pytest.raises(BadRequest, match="EMPTY_TEMPLATE"):
        templates.analyse("  \n", 100)
    with pytest.raises(BadRequest, match="TEMPLATE_TOO_LARGE"):
        templates.analyse("x" * 101, 100)


def test_render_with_variables_and_documents() -> None:
    docs = [TemplateDocument("a.md#0", "alpha", title="A", metadata={"lang": "en"}, score=0.5),
            TemplateDocument("b.md#2", "beta")]
    text = templates.render(
        "{{ q }}:{% for d in documents %} [{{ d.id }}] {{ d.text }}/{{ d.metadata.lang | "
        "default('-') }}/{{ '%.1f' % d.score }}{% endfor %}",
        {"q": "Q", "unused": "ignored"}, docs)
    assert text == "Q: [a.md#0] alpha/en/0.5 [b.md#2] beta/-/0.0"
    assert templates.render("{{ documents | length }}", {}) == "0"


def test_missing_variable_is_named() -> None:
    err = render_reason("Hello {{ name }}, about {{ topic }}", name="Ann")
    assert err.reason == "MISSING_VARIABLE" and "'topic'" in err.message


def test_missing_variable_inside_a_loop_or_condition() -> None:
    assert render_reason("{% if flag %}x{% endif %}").reason == "MISSING_VARIABLE"
    err = render_reason("{% for d in documents %}{% endfor %}{% for x in items %}{% endfor %}")
    assert err.reason == "MISSING_VARIABLE" and "'items'" in err.message


def test_missing_attribute_is_a_render_failure_not_a_variable() -> None:
    with pytest.raises(BadRequest) as info:
        templates.render("{% for d in documents %}{{ d.nope }}{% endfor %}", {},
                         [TemplateDocument("x", "y")])
    assert info.value.reason == "RENDER_FAILED"


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ ''.__class__.__mro__ }}", "UNSAFE_TEMPLATE"),
    ("{{ documents.__class__ }}", "UNSAFE_TEMPLATE"),
    ("{{ 'x' * n|int }}", "TEMPLATE_TOO_EXPENSIVE"),
    ("{{ 9 ** n|int }}", "TEMPLATE_TOO_EXPENSIVE"),
    ("{{ range(n|int) | list | length }}", "TEMPLATE_TOO_EXPENSIVE"),
])
def test_sandbox_refuses_escapes_and_blowups(template: str, expected: str) -> None:
    templates.analyse(template, 10_000)  # compiles fine: the checks happen at render time
    assert render_reason(template, n="10000000").reason == expected


def test_type_errors_are_render_failures() -> None:
    assert render_reason("{{ n + 1 }}", n="1").reason == "RENDER_FAILED"


def test_default_rag_template_cites_documents() -> None:
    assert templates.analyse(RAG_TEMPLATE, 10_000) == ("context", "documents", "question")
    text = templates.render(RAG_TEMPLATE, {"question": "How many days carry over?"}, [
        TemplateDocument("handbook.md#3", "Up to 5 vacation days carry over.", title="Handbook"),
        TemplateDocument("faq.md#0", "Carry-over expires in March."),
    ])
    # One short sentence copying the source's words, the citation shown on a one-shot example.
    assert "one short sentence that copies the words" in text
    assert "Answer: The cafeteria is open from 11:30 to 14:00 on weekdays [0]." in text
    assert "[handbook.md#3] Handbook: Up to 5 vacation days carry over.\n" in text
    assert "[faq.md#0] Carry-over expires in March.\n" in text
    assert text.endswith("Question: How many days carry over?\nAnswer:")
    plain = templates.render(RAG_TEMPLATE, {"question": "Q?", "context": "pre-formatted"})
    assert "Sources:\npre-formatted\n" in plain
    err = render_reason(RAG_TEMPLATE, context="c")
    assert err.reason == "MISSING_VARIABLE" and "'question'" in err.message
