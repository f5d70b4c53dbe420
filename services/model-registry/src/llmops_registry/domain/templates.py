"""Prompt templates: Jinja2 in a sandbox, strict about undefined variables, bounded in cost.

A template may read any variables (strings from the caller's map) plus `documents`, a list of
retrieved passages (id, text, title, source, metadata, score) so RAG prompts can loop over them
and cite `[{{ doc.id }}]`. The sandbox blocks attribute tricks (`__class__`...), and every
operation that can make a tiny template allocate gigabytes or loop for hours (template_limits.py)
is TEMPLATE_TOO_EXPENSIVE: at creation when the blowup is written in literals, at render time
otherwise. Renders run in worker processes with a time and memory limit (template_worker.py), so
whatever slips past the checks is killed, and the service keeps answering meanwhile.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from llmops_registry.domain import template_limits as limits
from llmops_registry.domain.errors import BadRequest

DOCUMENTS = "documents"
MAX_OUTPUT_CHARS = limits.MAX_OUTPUT_CHARS
MAX_EXPONENT = limits.MAX_EXPONENT
TOO_EXPENSIVE = "TEMPLATE_TOO_EXPENSIVE"
_MISSING = re.compile(r"^'([^']+)' is undefined$")


@dataclass(frozen=True)
class TemplateDocument:
    """One item of a template's `documents` list."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    score: float = 0.0


def _guarded_filter(name: str, inner: Any) -> Any:
    @functools.wraps(inner)
    def run(*args: Any, **kwargs: Any) -> Any:
        # filters get (value, *args) or (eval_ctx/env, value, *args) when pass_* decorated
        value, rest = (args[1], args[2:]) if getattr(inner, "jinja_pass_arg", None) else \
            (args[0], args[1:])
        limits.check_filter(name, value, tuple(rest), kwargs)
        return inner(*args, **kwargs)
    return run


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        # autoescape off: prompts are plain text, not HTML. keep_trailing_newline: what you write
        # is what the model sees. optimized off: the optimizer folds constants at compile time,
        # which would run `{{ 'x' | center(10**9) }}` inside analyse(), outside every limit.
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False,
                         keep_trailing_newline=True, optimized=False)
        self.globals["range"] = limits.RangeBudget.take
        for name in ("center", "indent", "format", "replace"):
            self.filters[name] = _guarded_filter(name, self.filters[name])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        # jinja swaps str.format for its own wrapper on attribute access, before call() sees it
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt, name = value.__self__, value.__name__

        def checked(*args: Any, **kwargs: Any) -> Any:
            limits.check_method(fmt, name, args, kwargs)
            return wrapped(*args, **kwargs)
        return checked

    def call(__self, __context: Any, __obj: Any, *args: Any,  # jinja's signature
             **kwargs: Any) -> Any:
        owner, name = getattr(__obj, "__self__", None), getattr(__obj, "__name__", "")
        limits.check_method(owner, name, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


@functools.cache
def _env() -> _Sandbox:
    return _Sandbox()


@functools.lru_cache(maxsize=256)
def _compiled(template: str) -> jinja2.Template:
    return _env().from_string(template)


def analyse(template: str, max_chars: int) -> tuple[str, ...]:
    """Validates a template and returns the variables it reads, sorted.

    BAD_TEMPLATE (with the line) for a syntax error or an unknown filter/test;
    TEMPLATE_TOO_EXPENSIVE for blowups written in literals (`9**9**9`, nested range loops).
    """
    if not template.strip():
        raise BadRequest("EMPTY_TEMPLATE", "the template is empty")
    if len(template) > max_chars:
        raise BadRequest("TEMPLATE_TOO_LARGE", f"the template is longer than {max_chars} characters")
    if "\x00" in template:  # Postgres text cannot store it
        raise BadRequest("BAD_TEMPLATE", "the template contains a NUL character")
    try:
        _compiled(template)
        ast = _env().parse(template)
        limits.check_static(ast)
    except jinja2.TemplateSyntaxError as exc:
        raise BadRequest("BAD_TEMPLATE", f"line {exc.lineno}: {exc.message}") from exc
    except limits.TooExpensive as exc:
        raise BadRequest(TOO_EXPENSIVE, str(exc)) from exc
    except (RecursionError, SyntaxError, MemoryError) as exc:
        # Python's own limits on the compiled code (nesting depth, parentheses)
        raise BadRequest("BAD_TEMPLATE", "the template is nested too deeply") from exc
    return tuple(sorted(meta.find_undeclared_variables(ast)))


def render_here(template: str, variables: Mapping[str, str],
                documents: Sequence[TemplateDocument] = ()) -> str:
    """Renders in this process with the sandbox's checks but no time or memory limit.

    Runs inside a render worker; call render() instead.
    """
    context: dict[str, Any] = dict(variables)
    context[DOCUMENTS] = list(documents)
    token = limits.RangeBudget.reset()
    try:
        parts: list[str] = []
        size = 0
        for chunk in _compiled(template).generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise BadRequest(TOO_EXPENSIVE,
                                 f"rendered text is longer than {MAX_OUTPUT_CHARS} characters")
            parts.append(chunk)
        return "".join(parts)
    except jinja2.UndefinedError as exc:
        match = _MISSING.match(str(exc))
        if match:
            raise BadRequest("MISSING_VARIABLE",
                             f"variable {match.group(1)!r} is required by the template") from exc
        raise BadRequest("RENDER_FAILED", str(exc)) from exc
    except limits.TooExpensive as exc:
        raise BadRequest(TOO_EXPENSIVE, str(exc)) from exc
    except SecurityError as exc:
        raise BadRequest("UNSAFE_TEMPLATE", str(exc)) from exc
    except jinja2.TemplateError as exc:
        raise BadRequest("RENDER_FAILED", str(exc)) from exc
    except (MemoryError, RecursionError) as exc:
        raise BadRequest(TOO_EXPENSIVE, f"rendering ran out of {_resource(exc)}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise BadRequest("RENDER_FAILED", f"{type(exc).__name__}: {exc}") from exc
    finally:
        limits.RangeBudget.restore(token)


def _resource(exc: BaseException) -> str:
    return "memory" if isinstance(exc, MemoryError) else "stack (recursion)"


def render(template: str, variables: Mapping[str, str],
           documents: Sequence[TemplateDocument] = ()) -> str:
    """Renders with the caller's variables; MISSING_VARIABLE names the first one not given.

    Blocking (call it from a thread): the render runs in a worker process that is killed after
    RENDER_TIMEOUT_SECONDS, which gives TEMPLATE_TOO_EXPENSIVE.
    """
    from llmops_registry.domain import template_worker  # the worker imports this module

    return template_worker.pool().render(template, variables, documents)
