"""Prompt templates: Jinja2 in a sandbox, strict about undefined variables.

A template may read any variables (strings from the caller's map) plus `documents`, a list of
retrieved passages (id, text, title, source, metadata, score) so RAG prompts can loop over them
and cite `[{{ doc.id }}]`. The sandbox blocks attribute tricks (`__class__`...) and the two
operators that make a tiny template allocate gigabytes (`'x' * 10**9`, `9**9**9`).
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

from llmops_registry.domain.errors import BadRequest

DOCUMENTS = "documents"
MAX_OUTPUT_CHARS = 1024 * 1024
MAX_EXPONENT = 1024
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


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (isinstance(seq, str | list | tuple) and isinstance(times, int)
                        and len(seq) * times > MAX_OUTPUT_CHARS):
                    raise SecurityError(f"repetition larger than {MAX_OUTPUT_CHARS} items")
        return super().call_binop(context, operator, left, right)


@functools.cache
def _env() -> _Sandbox:
    # autoescape off: prompts are plain text, not HTML. keep_trailing_newline: what you write is
    # what the model sees.
    return _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


@functools.lru_cache(maxsize=256)
def _compiled(template: str) -> jinja2.Template:
    return _env().from_string(template)


def analyse(template: str, max_chars: int) -> tuple[str, ...]:
    """Validates a template and returns the variables it reads, sorted.

    BAD_TEMPLATE (with the line) for a syntax error or an unknown filter/test.
    """
    if not template.strip():
        raise BadRequest("EMPTY_TEMPLATE", "the template is empty")
    if len(template) > max_chars:
        raise BadRequest("TEMPLATE_TOO_LARGE", f"the template is longer than {max_chars} characters")
    try:
        _compiled(template)
        ast = _env().parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise BadRequest("BAD_TEMPLATE", f"line {exc.lineno}: {exc.message}") from exc
    return tuple(sorted(meta.find_undeclared_variables(ast)))


def render(template: str, variables: Mapping[str, str],
           documents: Sequence[TemplateDocument] = ()) -> str:
    """Renders with the caller's variables; MISSING_VARIABLE names the first one not given."""
    context: dict[str, Any] = dict(variables)
    context[DOCUMENTS] = list(documents)
    try:
        text = _compiled(template).render(context)
    except jinja2.UndefinedError as exc:
        match = _MISSING.match(str(exc))
        if match:
            raise BadRequest("MISSING_VARIABLE",
                             f"variable {match.group(1)!r} is required by the template") from exc
        raise BadRequest("RENDER_FAILED", str(exc)) from exc
    except SecurityError as exc:
        raise BadRequest("UNSAFE_TEMPLATE", str(exc)) from exc
    except jinja2.TemplateError as exc:
        raise BadRequest("RENDER_FAILED", str(exc)) from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise BadRequest("RENDER_FAILED", f"{type(exc).__name__}: {exc}") from exc
    if len(text) > MAX_OUTPUT_CHARS:
        raise BadRequest("RENDER_TOO_LARGE", f"rendered text is longer than {MAX_OUTPUT_CHARS}")
    return text
