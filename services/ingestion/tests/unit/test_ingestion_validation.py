"""What the property tests found: fields Postgres cannot store are refused with a reason, on
the gRPC path and on the event path (dead-lettered, not retried forever)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmops_ingestion.adapters.sql_store import SqlDocumentStore, make_engine
from llmops_ingestion.adapters.tokenizers import WordTokenizer
from llmops_ingestion.domain.chunking import ChunkingPolicy
from llmops_ingestion.domain.errors import InvalidDocument
from llmops_ingestion.domain.model import ContentType, IncomingDocument, PreparedDocument
from llmops_ingestion.domain.service import IngestionService, Limits

pytestmark = pytest.mark.unit


class NullPublisher:
    async def publish_chunks(self, doc: PreparedDocument, version: int) -> None:
        return None

    async def publish_deleted(self, tenant: str, document_id: str, up_to_version: int) -> None:
        return None


@pytest.fixture
def service(tmp_path: Path) -> IngestionService:
    store = SqlDocumentStore(make_engine(f"sqlite:///{tmp_path}/ingestion.db"))
    return IngestionService(store, NullPublisher(), WordTokenizer(), ChunkingPolicy(50, 10),
                            Limits())


def reason(call: object) -> str:
    with pytest.raises(InvalidDocument) as info:
        if asyncio.iscoroutine(call):
            asyncio.run(call)
    return info.value.reason


def incoming(doc_id: str = "d1", title: str = "T", source: str = "s") -> IncomingDocument:
    return IncomingDocument("acme", doc_id, title, source, ContentType.TEXT, b"text", {})


@pytest.mark.parametrize(("doc", "expected"), [
    (incoming(title="a\x00b"), "BAD_TITLE"),
    (incoming(source="s\x07"), "BAD_SOURCE"),
    (incoming(source="s" * 2001), "SOURCE_TOO_LONG"),
    (incoming(title="t" * 1001), "TITLE_TOO_LONG"),
    (incoming(doc_id="d1\n"), "BAD_DOCUMENT_ID"),
])
def test_prepare_refuses_fields_the_store_cannot_hold(service: IngestionService,
                                                      doc: IncomingDocument, expected: str) -> None:
    with pytest.raises(InvalidDocument) as info:
        service.prepare(doc)
    assert info.value.reason == expected


def test_titles_and_sources_with_tabs_newlines_and_unicode_are_fine(
        service: IngestionService) -> None:
    prepared = service.prepare(incoming(title="Ünï\tcode\nT", source="https://x/é"))
    assert (prepared.title, prepared.source) == ("Ünï\tcode\nT", "https://x/é")


@pytest.mark.parametrize(("args", "expected"), [
    (("acme", "", 1, 0, 1), "MISSING_DOCUMENT_ID"),
    (("acme", "d\x00", 1, 0, 1), "BAD_DOCUMENT_ID"),
    (("acme", "d1", 1, 2**32 - 1, 1), "BAD_EVENT"),
    (("acme", "d1", 2**31, 0, 1), "BAD_EVENT"),
])
def test_indexed_events_outside_the_store_are_refused(service: IngestionService,
                                                      args: tuple, expected: str) -> None:
    assert reason(service.on_indexed(*args)) == expected


@pytest.mark.parametrize(("args", "expected"), [
    (("acme", "", 0), "MISSING_DOCUMENT_ID"),
    (("acme", "x" * 300, 0), "BAD_DOCUMENT_ID"),
    (("acme", "d1", 2**32 - 1), "BAD_EVENT"),
])
def test_external_deletes_outside_the_store_are_refused(service: IngestionService,
                                                        args: tuple, expected: str) -> None:
    assert reason(service.apply_external_delete(*args)) == expected
