"""What one template may cost: checks shared by the sandbox (at render) and `analyse` (at create).

A tiny template can ask for gigabytes or hours: `"%0999999999d" % 1`, `"x".ljust(10**9)`,
`9**9**9`, `range(10**5)` inside `range(10**5)`. Every operation that can grow a value far
beyond its inputs is checked *before* it runs against the output cap, and ranges draw on one
budget per render. These checks give a fast, clear answer for the known shapes; the worker
process that renders (template_worker.py) is the hard limit for everything else.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterable
from typing import Any

from jinja2 import nodes
from jinja2.sandbox import SecurityError

MAX_OUTPUT_CHARS = 1024 * 1024
MAX_EXPONENT = 1024
# Items that range() may produce in one render, all calls together: nested loops over large
# ranges run out of it after a few outer iterations instead of spinning for hours.
MAX_RANGE_ITEMS = 100_000

# %-format field widths/precisions ("%0999999999d", "%.*f") and str.format specs ("{:>999999}").
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")
_BRACE_FIELD = re.compile(r"\{[^{}]*\{")
PADDING_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})
FORMAT_METHODS = frozenset({"format", "format_map"})

_range_used: contextvars.ContextVar[list[int]] = contextvars.ContextVar("template_range_used")


class TooExpensive(SecurityError):
    """A template asked for more time or memory than a render may use."""


def _check_size(size: int, what: str) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise TooExpensive(f"{what} would be longer than {MAX_OUTPUT_CHARS} characters")


def _ints(values: Iterable[Any]) -> list[int]:
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def check_percent_format(fmt: str, args: Any) -> None:
    """`fmt % args`: no field wider or more precise than the output cap."""
    star = False
    for match in _PERCENT_FIELD.finditer(fmt):
        for group in match.groups():
            if group == "*":
                star = True
            elif group is not None:
                _check_size(int(group), "a %-format field")
    if star:
        values = args if isinstance(args, tuple) else (args,)
        for n in _ints(values):
            _check_size(abs(n), "a %-format field")


def check_brace_format(fmt: str, args: Iterable[Any]) -> None:
    """`fmt.format(*args)`: no literal width beyond the cap, nor a nested width from args."""
    for digits in _DIGITS.findall(fmt):
        if len(digits) > 7:  # a field index or width this long is not a prompt
            raise TooExpensive(f"a format field would be longer than {MAX_OUTPUT_CHARS}")
        _check_size(int(digits), "a format field")
    if _BRACE_FIELD.search(fmt):
        for n in _ints(args):
            _check_size(abs(n), "a format field")


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Raises TooExpensive before `left <operator> right` could blow up."""
    if operator == "**":
        if isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise TooExpensive(f"exponent {right} is larger than {MAX_EXPONENT}")
        # a big base is as bad as a big exponent: (10**1000)**1000
        if isinstance(left, int) and isinstance(right, int) and right > 1 \
                and left.bit_length() * right > MAX_EXPONENT * 64:
            raise TooExpensive("power result is too large")
    elif operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                _check_size(len(seq) * times, "a repetition")
        if isinstance(left, int) and isinstance(right, int) \
                and left.bit_length() + right.bit_length() > MAX_EXPONENT * 64:
            raise TooExpensive("product is too large")
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left, right)
    elif operator == "+" and isinstance(left, str | list | tuple) \
            and isinstance(right, str | list | tuple):
        _check_size(len(left) + len(right), "a concatenation")


def check_method(obj: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Str methods whose result can be far larger than the string: padding, format, replace."""
    if not isinstance(obj, str):
        return
    if name in PADDING_METHODS:
        for n in _ints((*args, *kwargs.values())):
            _check_size(n if name != "expandtabs" else n * max(1, obj.count("\t")),
                        f"str.{name}()")
    elif name in FORMAT_METHODS:
        check_brace_format(obj, (*args, *kwargs.values(), *_mapping_values(args)))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) \
            and isinstance(args[1], str):
        check_replace(obj, args[0], args[1])


def _mapping_values(args: tuple[Any, ...]) -> list[Any]:
    return [v for a in args if isinstance(a, dict) for v in a.values()]


def check_replace(text: str, old: str, new: str) -> None:
    hits = len(text) + 1 if old == "" else text.count(old)
    _check_size(len(text) + hits * max(0, len(new) - len(old)), "a replace()")


def check_filter(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Jinja filters that can grow their input: center, indent, format, replace."""
    numbers = _ints((*args, *kwargs.values()))
    if name == "center":
        for n in numbers:
            _check_size(n, "center()")
    elif name == "indent" and isinstance(value, str):
        lines = value.count("\n") + 1
        for n in numbers:
            _check_size(len(value) + abs(n) * lines, "indent()")
        for s in (*args, *kwargs.values()):
            if isinstance(s, str):
                _check_size(len(value) + len(s) * lines, "indent()")
    elif name == "format" and isinstance(value, str):
        check_percent_format(value, args if len(args) != 1 else args[0])
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) \
            and isinstance(args[1], str) and isinstance(value, str):
        check_replace(value, args[0], args[1])


class RangeBudget:
    """Per-render range() accounting, in a context variable (one render per worker at a time)."""

    @staticmethod
    def reset() -> contextvars.Token[list[int]]:
        return _range_used.set([0])

    @staticmethod
    def restore(token: contextvars.Token[list[int]]) -> None:
        _range_used.reset(token)

    @staticmethod
    def take(*args: int) -> range:
        items = range(*args)
        used = _range_used.get([0])
        used[0] += len(items)
        if used[0] > MAX_RANGE_ITEMS:
            raise TooExpensive(f"loops over ranges would run more than {MAX_RANGE_ITEMS} times")
        return items


# --- static checks over a parsed template (at CreatePromptVersion) -----------------------------

_BINOPS: dict[type[nodes.Node], str] = {nodes.Pow: "**", nodes.Mul: "*", nodes.Mod: "%",
                                           nodes.Add: "+"}


class _NotConstant(Exception):
    pass


class _OutOfBudget(Exception):
    """Static evaluation did enough work: the rest is left to the render-time checks."""


# Characters that evaluating literals at creation may produce, all expressions together: the
# checks run in the registry's own process, so they must stay cheap whatever the template.
STATIC_BUDGET_CHARS = 4 * MAX_OUTPUT_CHARS


class _Evaluator:
    """Values of literal expressions, each node once, each step checked before it runs."""

    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}
        self.spent = 0

    def value(self, node: nodes.Node) -> Any:
        key = id(node)
        if key not in self.memo:
            try:
                self.memo[key] = self._compute(node)
            except _NotConstant:
                self.memo[key] = _NotConstant
        found = self.memo[key]
        if found is _NotConstant:
            raise _NotConstant
        return found

    def value_or_none(self, node: nodes.Node | None) -> Any:
        if node is None:
            return None
        try:
            return self.value(node)
        except _NotConstant:
            return None

    def _compute(self, node: nodes.Node) -> Any:
        if isinstance(node, nodes.Const):
            return node.value
        if isinstance(node, nodes.Tuple | nodes.List):
            values = [self.value(item) for item in node.items]
            return tuple(values) if isinstance(node, nodes.Tuple) else values
        if isinstance(node, nodes.Neg):
            value = self.value(node.node)
            if isinstance(value, int | float):
                return -value
        op = _BINOPS.get(type(node))
        if op is not None and isinstance(node, nodes.BinExpr):
            left, right = self.value(node.left), self.value(node.right)
            check_binop(op, left, right)
            try:
                result = _apply(op, left, right)
            except (TypeError, ValueError, ArithmeticError) as exc:
                raise _NotConstant from exc
            if isinstance(result, str | list | tuple):
                self.spent += len(result)
                if self.spent > STATIC_BUDGET_CHARS:
                    raise _OutOfBudget
            return result
        raise _NotConstant


def _apply(op: str, left: Any, right: Any) -> Any:
    if op == "**":
        return left ** right
    if op == "*":
        return left * right
    if op == "%":
        return left % right
    return left + right


def _call_args(ev: _Evaluator, node: nodes.Call | nodes.Filter
               ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args = tuple(ev.value_or_none(a) for a in node.args)
    kwargs = {str(kw.key): ev.value_or_none(kw.value) for kw in node.kwargs}
    return args, kwargs


def _static_range_size(ev: _Evaluator, node: nodes.Node) -> int:
    """Items of `range(<literals>)`; 1 for any other loop (its size is only known at render)."""
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) \
            and node.node.name == "range" and not node.kwargs:
        args = [ev.value_or_none(a) for a in node.args]
        if args and all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            try:
                return len(range(*args))
            except (ValueError, OverflowError):
                return MAX_RANGE_ITEMS + 1
    return 1


def _check_loops(ev: _Evaluator, node: nodes.Node, outer: int) -> None:
    if not isinstance(node, nodes.For):
        for child in node.iter_child_nodes():
            _check_loops(ev, child, outer)
        return
    items = outer * _static_range_size(ev, node.iter)
    if items > MAX_RANGE_ITEMS:
        raise TooExpensive(f"loops over ranges would run more than {MAX_RANGE_ITEMS} times")
    _check_loops(ev, node.iter, outer)
    for part in (*node.body, *node.else_, *([node.test] if node.test is not None else [])):
        _check_loops(ev, part, items)


def check_static(ast: nodes.Template) -> None:
    """Raises TooExpensive for literal blowups and nested range loops, without running them."""
    ev = _Evaluator()
    try:
        for node in ast.find_all((nodes.BinExpr, nodes.Call, nodes.Filter)):
            if isinstance(node, nodes.BinExpr):
                ev.value_or_none(node)  # evaluating checks every step
            elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
                target = ev.value_or_none(node.node.node)
                check_method(target, node.node.attr, *_call_args(ev, node))
            elif isinstance(node, nodes.Filter):
                check_filter(node.name, ev.value_or_none(node.node), *_call_args(ev, node))
    except _OutOfBudget:
        pass  # enough literal work done; render-time checks and the worker cover the rest
    _check_loops(ev, ast, 1)
