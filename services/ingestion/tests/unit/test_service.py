"""The ingestion use cases on the real SQLite store and a recording publisher."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_ingestion.adapters.sql_store import SqlDocumentStore, make_engine
from llmops_ingestion.adapters.tokenizers import WordTokenizer
from llmops_ingestion.domain.chunking import ChunkingPolicy, chunk_id
from llmops_ingestion.domain.errors import DocumentNotFound, InvalidDocument
from llmops_ingestion.domain.model import (
    ContentType,
    DocumentState,
    IncomingDocument,
    PreparedDocument,
)
from llmops_ingestion.domain.service import IngestionService, Limits

pytestmark = pytest.mark.unit


class RecordingPublisher:
    def __init__(self) -> None:
        self.chunks: list[tuple[PreparedDocument, int]] = []
        self.deleted: list[tuple[str, str, int]] = []
        self.fail_next = False

    async def publish_chunks(self, doc: PreparedDocument, version: int) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("kafka down")
        self.chunks.append((doc, version))

    async def publish_deleted(self, tenant: str, document_id: str, up_to_version: int) -> None:
        self.deleted.append((tenant, document_id, up_to_version))


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def service(tmp_path: Path, publisher: RecordingPublisher) -> IngestionService:
    store = SqlDocumentStore(make_engine(f"sqlite:///{tmp_path}/ingestion.db"))
    return IngestionService(store, publisher, WordTokenizer(), ChunkingPolicy(50, 10),
                            Limits(max_document_bytes=10_000, max_batch_documents=3))


def doc(doc_id: str, text: str, tenant: str = "acme") -> IncomingDocument:
    return IncomingDocument(tenant, doc_id, "Title", "src", ContentType.TEXT, text.encode(),
                            {"team": "hr"})


async def test_versions_replace_and_unchanged_is_a_noop(
    service: IngestionService, publisher: RecordingPublisher
) -> None:
    first = await service.submit(service.prepare(doc("d1", "alpha beta gamma " * 40)))
    assert (first.version, first.unchanged) == (1, False)
    assert first.chunk_count == len(publisher.chunks[0][0].chunks) > 1
    same = await service.submit(service.prepare(doc("d1", "alpha beta gamma " * 40)))
    assert same.unchanged and same.version == 1 and len(publisher.chunks) == 1
    changed = await service.submit(service.prepare(doc("d1", "delta epsilon " * 30)))
    assert (changed.version, changed.unchanged) == (2, False)
    published, version = publisher.chunks[-1]
    assert version == 2
    assert [c.chunk_id for c in published.chunks] == [
        chunk_id("acme", "d1", 2, i) for i in range(len(published.chunks))
    ]


async def test_crash_between_store_and_publish_republishes_same_version(
    service: IngestionService, publisher: RecordingPublisher
) -> None:
    publisher.fail_next = True
    with pytest.raises(ConnectionError):
        await service.submit(service.prepare(doc("d2", "some text " * 20)))
    retry = await service.submit(service.prepare(doc("d2", "some text " * 20)))
    assert (retry.version, retry.unchanged) == (1, False)
    assert len(publisher.chunks) == 1


async def test_status_tracks_indexing_idempotently(service: IngestionService) -> None:
    out = await service.submit(service.prepare(doc("d3", "word " * 200)))
    st = await service.status("acme", "d3")
    assert st.state is DocumentState.CHUNKED and st.indexed_chunk_count == 0
    await service.on_indexed("acme", "d3", 1, 0, out.chunk_count)
    await service.on_indexed("acme", "d3", 1, 0, out.chunk_count)  # replayed event
    st = await service.status("acme", "d3")
    assert st.state is DocumentState.INDEXED and st.indexed_chunk_count == out.chunk_count


async def test_delete_then_resubmit_creates_a_new_version(
    service: IngestionService, publisher: RecordingPublisher
) -> None:
    await service.submit(service.prepare(doc("d4", "to be deleted " * 10)))
    assert await service.delete("acme", "d4") == 1
    assert publisher.deleted == [("acme", "d4", 1)]
    assert (await service.status("acme", "d4")).state is DocumentState.DELETED
    again = await service.submit(service.prepare(doc("d4", "to be deleted " * 10)))
    assert (again.version, again.unchanged) == (2, False)


async def test_tenants_are_separate(service: IngestionService) -> None:
    await service.submit(service.prepare(doc("shared-id", "tenant a text", tenant="a")))
    with pytest.raises(DocumentNotFound):
        await service.status("b", "shared-id")
    with pytest.raises(DocumentNotFound):
        await service.delete("b", "shared-id")


def test_batch_validation_names_the_bad_document(service: IngestionService) -> None:
    with pytest.raises(InvalidDocument) as err:
        service.prepare_batch([doc("ok", "fine"), doc("bad", "")])
    assert err.value.reason == "EMPTY_DOCUMENT" and "documents[1]" in err.value.message
    with pytest.raises(InvalidDocument) as err:
        service.prepare_batch([doc("a", "x"), doc("a", "y")])
    assert err.value.reason == "DUPLICATE_DOCUMENT_ID"
    with pytest.raises(InvalidDocument) as err:
        service.prepare_batch([doc(f"d{i}", "x") for i in range(4)])
    assert err.value.reason == "BATCH_TOO_LARGE"
    with pytest.raises(InvalidDocument) as err:
        service.prepare_batch([doc("bad id with spaces", "x")])
    assert err.value.reason == "BAD_DOCUMENT_ID"
    with pytest.raises(InvalidDocument) as err:
        service.prepare_batch([])
    assert err.value.reason == "EMPTY_BATCH"


async def test_pii_is_redacted_before_chunks_leave_ingestion(
    tmp_path: Path, publisher: RecordingPublisher
) -> None:
    from llmops_ingestion.adapters.pii import PiiRedactor

    store = SqlDocumentStore(make_engine(f"sqlite:///{tmp_path}/pii.db"))
    svc = IngestionService(store, publisher, WordTokenizer(), ChunkingPolicy(50, 10),
                           Limits(), redactor=PiiRedactor())
    text = ("Escalations go to jane.doe@example.com or +82 10-1234-5678. "
            "Release 3.11.7 ships on 2026-11-25 with order ORD-2024-000123.")
    incoming = IncomingDocument("acme", "pii-doc", "Notes for jane.doe@example.com", "src",
                                ContentType.TEXT, text.encode())
    await svc.submit(svc.prepare(incoming))
    published, _ = publisher.chunks[0]
    body = " ".join(c.text for c in published.chunks)
    assert "jane.doe@example.com" not in body and "1234-5678" not in body
    assert "[EMAIL]" in body and "[PHONE]" in body
    assert "3.11.7" in body and "2026-11-25" in body and "ORD-2024-000123" in body
    assert published.title == "Notes for [EMAIL]"


@pytest.fixture
def redacting(tmp_path: Path, publisher: RecordingPublisher) -> IngestionService:
    from llmops_ingestion.adapters.pii import PiiRedactor

    store = SqlDocumentStore(make_engine(f"sqlite:///{tmp_path}/redacting.db"))
    return IngestionService(store, publisher, WordTokenizer(), ChunkingPolicy(50, 10),
                            Limits(max_batch_documents=4), redactor=PiiRedactor())


async def test_every_stored_and_published_field_is_redacted(
    redacting: IngestionService, publisher: RecordingPublisher
) -> None:
    incoming = IncomingDocument(
        "acme", "hr/escalations.md", "Escalations: call 010-1234-5678",
        "https://wiki.example.com/u/jane.doe@example.com/escalations",
        ContentType.TEXT, b"Ask for the on-call lead.",
        {"owner": "jane.doe@example.com", "card": "4111 1111 1111 1111", "team": "hr",
         "iban": "DE89 3704 0044 0532 0130 00", "rrn": "900101-1234567"},
    )
    await redacting.submit(redacting.prepare(incoming))
    published, _ = publisher.chunks[0]
    assert published.title == "Escalations: call [PHONE]"
    assert published.source == "https://wiki.example.com/u/[EMAIL]/escalations"
    assert published.metadata == {"owner": "[EMAIL]", "card": "[CREDIT_CARD]", "team": "hr",
                                  "iban": "[IBAN]", "rrn": "[KR_RRN]"}
    # What the SQL store keeps (GetDocumentStatus reads it back) is the redacted form too.
    stored = await redacting.status("acme", "hr/escalations.md")
    assert (stored.title, stored.source) == (published.title, published.source)


@pytest.mark.parametrize(("doc_id", "category"), [
    ("jane.doe@example.com/notes.md", "pii.email"),
    ("calls/010-1234-5678.txt", "pii.phone"),
    ("kyc/900101-1234567", "pii.kr_rrn"),
    ("cards/4111-1111-1111-1111", "pii.credit_card"),
    ("hosts/10.0.0.12", "pii.ip_address"),
])
def test_a_document_id_with_pii_is_refused_without_echoing_it(
    redacting: IngestionService, doc_id: str, category: str
) -> None:
    with pytest.raises(InvalidDocument) as err:
        redacting.prepare(doc(doc_id, "body"))
    assert err.value.reason == "DOCUMENT_ID_CONTAINS_PII"
    assert err.value.message == (f"document_id contains personal data ({category}); "
                                 "use an opaque id")
    with pytest.raises(InvalidDocument) as err:
        redacting.prepare_batch([doc("fine", "body"), doc(doc_id, "body")])
    assert err.value.reason == "DOCUMENT_ID_CONTAINS_PII"
    assert err.value.message.startswith("documents[1] (") and doc_id not in err.value.message


def test_ids_and_keys_without_pii_pass_and_metadata_keys_with_pii_are_refused(
    redacting: IngestionService
) -> None:
    # Dates, versions and order numbers in ids are not PII.
    for ok in ("reports/2026-11-25.md", "release-3.11.7/notes", "ORD-2024-000123"):
        assert redacting.prepare(doc(ok, "body")).document_id == ok
    bad = IncomingDocument("acme", "d", "t", "s", ContentType.TEXT, b"body",
                           {"team": "hr", "kim@example.com": "owner"})
    with pytest.raises(InvalidDocument) as err:
        redacting.prepare(bad)
    assert err.value.reason == "METADATA_KEY_CONTAINS_PII"
    assert "kim@example.com" not in err.value.message and "#1" in err.value.message


def test_without_a_redactor_fields_pass_through(service: IngestionService) -> None:
    prepared = service.prepare(IncomingDocument(
        "acme", "a@b.io", "t a@b.io", "s a@b.io", ContentType.TEXT, b"x", {"k": "a@b.io"}))
    assert (prepared.title, prepared.source, prepared.metadata) == (
        "t a@b.io", "s a@b.io", {"k": "a@b.io"})


def test_bad_id_errors_do_not_echo_the_id(service: IngestionService) -> None:
    with pytest.raises(InvalidDocument) as err:
        service.prepare(doc("kim lee@example.com", "x"))
    assert err.value.reason == "BAD_DOCUMENT_ID" and "lee@example.com" not in err.value.message


async def test_not_found_errors_do_not_echo_the_id(service: IngestionService) -> None:
    # An id stored before ids with PII were refused can still be looked up and deleted.
    for call in (service.status, service.delete):
        with pytest.raises(DocumentNotFound) as err:
            await call("acme", "lee@example.com")
        assert err.value.message == "no such document in this tenant"
