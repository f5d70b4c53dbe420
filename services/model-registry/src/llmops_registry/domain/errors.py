"""The registry's errors, each with a stable reason (mapped to gRPC status codes at the edge)."""

from __future__ import annotations

from llmops_kit.errors import InvalidArgument, NotFound


class BadRequest(InvalidArgument):
    """A malformed name, alias, URI, template, page token... (INVALID_ARGUMENT)."""


class Missing(NotFound):
    """A model, prompt, version, alias or label that does not exist (NOT_FOUND)."""

