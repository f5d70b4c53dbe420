"""Validation and text extraction: bytes in, clean Unicode text out."""

from __future__ import annotations

import re
import unicodedata

from bs4 import BeautifulSoup
from markdown_it import MarkdownIt

from llmops_ingestion.domain.errors import InvalidDocument
from llmops_ingestion.domain.model import ContentType

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,255}$")
_HTML_DROP = ("script", "style", "noscript", "template", "svg", "head")
_BLOCK_TAGS = ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section",
               "article", "pre", "blockquote", "table", "ul", "ol")


# Versions, batch indexes and counts are stored as SQL INTEGER (32-bit signed on Postgres).
MAX_STORED_INT = 2**31 - 1


def validate_id(document_id: str) -> None:
    if not document_id:
        raise InvalidDocument("MISSING_DOCUMENT_ID", "document_id is required")
    if not _ID.fullmatch(document_id):
        raise InvalidDocument(
            "BAD_DOCUMENT_ID",
            # The id itself is not echoed: errors end up in DLQ headers and logs.
            f"document_id ({len(document_id)} chars) must be 1-256 chars of letters, digits "
            "and ._:/@+-",
        )


def validate_text(value: str, name: str, max_chars: int) -> None:
    """A title or source: bounded, and no control characters (Postgres refuses NUL)."""
    if len(value) > max_chars:
        raise InvalidDocument(f"{name.upper()}_TOO_LONG", f"{name} exceeds {max_chars} characters")
    if _CONTROL.search(value):
        raise InvalidDocument(f"BAD_{name.upper()}", f"{name} contains control characters")


def validate_count(value: int, name: str) -> None:
    if not 0 <= value <= MAX_STORED_INT:
        raise InvalidDocument("BAD_EVENT", f"{name} {value} is out of range")


def decode_utf8(content: bytes, max_bytes: int) -> str:
    if not content:
        raise InvalidDocument("EMPTY_DOCUMENT", "content is empty")
    if len(content) > max_bytes:
        raise InvalidDocument(
            "DOCUMENT_TOO_LARGE", f"content is {len(content)} bytes, the limit is {max_bytes}"
        )
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidDocument(
            "NOT_UTF8", f"content is not valid UTF-8 at byte {exc.start}"
        ) from exc
    return text.removeprefix("\ufeff")


def normalize(text: str) -> str:
    """NFC, unified newlines, no control characters, collapsed runs of spaces and blank lines."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(list(_HTML_DROP)):
        tag.decompose()
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    return soup.get_text()


def markdown_to_text(markdown: str) -> str:
    # Render to HTML and strip tags: drops link targets, emphasis markers and fences
    # while keeping the words (including code) that people search for.
    return html_to_text(MarkdownIt("commonmark").render(markdown))


def extract_text(content: bytes, content_type: ContentType | None, max_bytes: int) -> str:
    if content_type is None:
        raise InvalidDocument(
            "UNSUPPORTED_CONTENT_TYPE", "content_type must be one of text, markdown, html"
        )
    raw = decode_utf8(content, max_bytes)
    if content_type is ContentType.HTML:
        raw = html_to_text(raw)
    elif content_type is ContentType.MARKDOWN:
        raw = markdown_to_text(raw)
    text = normalize(raw)
    if not text:
        raise InvalidDocument("EMPTY_DOCUMENT", "content has no text after extraction")
    return text
