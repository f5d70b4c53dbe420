"""Plain data of the ingestion domain (no protobuf, no I/O)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class ContentType(enum.Enum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"


class DocumentState(enum.Enum):
    CHUNKED = "chunked"
    INDEXED = "indexed"
    DELETED = "deleted"


@dataclass(frozen=True)
class IncomingDocument:
    tenant: str
    document_id: str
    title: str
    source: str
    content_type: ContentType | None
    content: bytes
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    index: int
    text: str
    content_hash: str
    token_count: int
    char_start: int
    char_end: int


@dataclass(frozen=True)
class PreparedDocument:
    """A validated document with its text extracted and chunked."""

    tenant: str
    document_id: str
    title: str
    source: str
    metadata: dict[str, str]
    fingerprint: str
    chunks: list[Chunk]
    duplicates_dropped: int


@dataclass(frozen=True)
class DocumentRecord:
    tenant: str
    document_id: str
    version: int
    fingerprint: str
    title: str
    source: str
    state: DocumentState
    chunk_count: int
    indexed_chunk_count: int
    published: bool
    updated_at: datetime


@dataclass(frozen=True)
class SubmitOutcome:
    document_id: str
    version: int
    chunk_count: int
    unchanged: bool
    duplicates_dropped: int
