"""Ingestion's errors, each with a stable reason (mapped to gRPC / DLQ at the edge)."""

from __future__ import annotations

from llmops_kit.errors import InvalidArgument, NotFound


class InvalidDocument(InvalidArgument):
    """The document itself is unacceptable (empty, too large, wrong type, bad encoding)."""


class DocumentNotFound(NotFound):
    pass
