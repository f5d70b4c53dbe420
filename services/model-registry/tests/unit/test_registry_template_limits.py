"""Template cost limits: literal blowups at creation, computed ones at render, the worker's kill."""

from __future__ import annotations

import time

import pytest

from llmops_registry.domain import template_limits, templates
from llmops_registry.domain.errors import BadRequest
from llmops_registry.domain.template_worker import RenderPool

pytestmark = pytest.mark.unit

TOO_EXPENSIVE = "TEMPLATE_TOO_EXPENSIVE"
NESTED_RANGES = "{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}"


def create_reason(template: str) -> str:
    with pytest.raises(BadRequest) as info:
        templates.analyse(template, 10_000)
    return info.value.reason


def render_error(template: str, **variables: str) -> tuple[BadRequest, float]:
    start = time.monotonic()
    with pytest.raises(BadRequest) as info:
        templates.render(template, variables)
    return info.value, time.monotonic() - start


@pytest.mark.parametrize("template", [
    '{{ "%0999999999d" % 1 }}',
    '{{ "%.*f" % (999999999, 1.0) }}',
    '{{ "x".ljust(10**9) }}',
    '{{ "x".center(999999999) }}',
    '{{ "x" | center(999999999) }}',
    '{{ "%0999999999d" | format(1) }}',
    '{{ "{:>999999999}".format(1) }}',
    '{{ 9 ** (9 ** 9) }}',
    '{{ (10 ** 1000) ** 1000 }}',
    "{{ 'x' * 10**9 }}",
    "{{ [1, 2] * 10**9 }}",
    NESTED_RANGES,
    "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
])
def test_literal_blowups_are_refused_at_creation(template: str) -> None:
    assert create_reason(template) == TOO_EXPENSIVE


@pytest.mark.parametrize("template", [
    '{{ "%05d|%-4s|%.2f" % (3, "ab", 1.5) }}',
    '{{ "x".ljust(4) }}{{ "{:>3}".format(7) }}{{ "t" | center(5) }}',
    "{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}",
    "{% for d in documents %}{% for k in d.metadata %}{{ k }}{% endfor %}{% endfor %}",
    "{{ 2 ** 64 }} {{ 'ab' * 3 }}",
])
def test_ordinary_templates_are_accepted(template: str) -> None:
    templates.analyse(template, 10_000)


def test_ordinary_formatting_renders() -> None:
    text = templates.render(
        '{{ "%05d|%-4s|%.2f" % (3, "ab", 1.5) }} {{ "x".ljust(3) }}| {{ "{:>3}".format(7) }} '
        "{{ 'ab' * 2 }} {{ 2 ** 10 }} {% for i in range(3) %}{{ i }}{% endfor %}", {})
    assert text == "00003|ab  |1.50 x  |   7 abab 1024 012"


@pytest.mark.parametrize(("template", "fragment"), [
    ('{{ ("%0" ~ w ~ "d") % 1 }}', "%-format field"),
    ("{{ 'x'.ljust(w | int) }}", "str.ljust()"),
    ("{{ 'x' | center(w | int) }}", "center()"),
    ('{{ ("{:>" ~ w ~ "}").format(1) }}', "format field"),
    ("{{ 9 ** (w | int) }}", "exponent"),
    ("{{ 'x' * (w | int) }}", "repetition"),
    ("{% for i in range(w | int) %}{% endfor %}", "ranges"),
    ("{% for i in range(n | int) %}{% for j in range(n | int) %}{% endfor %}{% endfor %}",
     "ranges"),
    ("{{ s | replace('', s) }}", "replace()"),
    ("{{ s ~ s ~ s ~ s }}{{ s * 20 }}", "repetition"),
])
def test_computed_blowups_fail_fast_at_render(template: str, fragment: str) -> None:
    templates.analyse(template, 10_000)  # nothing literal to see at creation
    err, took = render_error(template, w="999999999", n="100000", s="y" * 100_000)
    assert (err.reason, fragment in err.message) == (TOO_EXPENSIVE, True), err.message
    assert took < 1.0


def test_output_is_capped() -> None:
    big = "y" * 600_000
    err, _ = render_error("{{ s }}{{ s }}", s=big)
    assert err.reason == TOO_EXPENSIVE and "rendered text is longer than 1048576" in err.message


def test_recursion_is_too_expensive() -> None:
    err, took = render_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
    assert err.reason == TOO_EXPENSIVE and "recursion" in err.message and took < 1.0


def test_a_render_past_the_time_limit_is_killed_and_the_pool_recovers() -> None:
    pool = RenderPool(workers=1, timeout=0.5)
    try:
        assert pool.render("warm {{ x }}", {"x": "up"}) == "warm up"
        slow = "{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}"
        templates.analyse(slow, 10_000)
        start = time.monotonic()
        with pytest.raises(BadRequest) as info:
            pool.render(slow, {"s": "y" * 5000})
        took = time.monotonic() - start
        assert info.value.reason == TOO_EXPENSIVE and "longer than 0.5 s" in info.value.message
        assert 0.5 <= took < 1.0
        assert pool.render("{{ x }} again", {"x": "fine"}) == "fine again"
    finally:
        pool.close()


def test_memory_past_the_worker_limit_is_too_expensive() -> None:
    # doubling through `~` is not checked per step: the worker's address-space limit stops it
    pool = RenderPool(workers=1, timeout=5.0, memory_bytes=512 * 1024 * 1024)
    doubling = ('{% set ns = namespace(s="xxxxxxxxxxxxxxxx") %}{% for i in range(40) %}'
                "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}")
    try:
        with pytest.raises(BadRequest) as info:
            pool.render(doubling, {})
        assert info.value.reason == TOO_EXPENSIVE
        assert pool.render("{{ 1 + 1 }}", {}) == "2"
    finally:
        pool.close()


def test_range_budget_is_per_render() -> None:
    template = "{% for i in range(60000) %}{% endfor %}ok"
    assert [templates.render(template, {}) for _ in range(3)] == ["ok"] * 3
    assert template_limits.MAX_RANGE_ITEMS == 100_000


def test_nesting_beyond_pythons_limits_is_a_bad_template_not_a_crash() -> None:
    # 300 chained `+` compile to 300 nested calls: Python's compiler refuses (SyntaxError)
    assert create_reason("{{ 'x'" + " + 'a'" * 300 + " }}") == "BAD_TEMPLATE"
    assert create_reason("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}") == "BAD_TEMPLATE"


def test_static_checks_stop_after_a_bounded_amount_of_literal_work() -> None:
    # 3000 literal 1 MB strings: the static evaluation stops at its budget instead of building
    # 3 GB inside the registry; rendering then hits the output cap in the worker
    many = "{{ 'x' * 1000000 }}" * 3000
    assert template_limits.STATIC_BUDGET_CHARS == 4 * template_limits.MAX_OUTPUT_CHARS
    start = time.monotonic()
    assert templates.analyse(many, 64 * 1024) == ()
    assert time.monotonic() - start < 5.0
    err, _ = render_error(many)
    # The output cap stops it; on a busy machine the render's time limit may come first.
    assert err.reason == TOO_EXPENSIVE
    assert "rendered text is longer" in err.message or "took longer" in err.message, err.message
