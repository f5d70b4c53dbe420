"""The ingestion use cases, shared by the gRPC API and the Kafka consumer."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace

from llmops_ingestion.domain.chunking import ChunkingPolicy, chunk_document, chunk_id
from llmops_ingestion.domain.errors import DocumentNotFound, InvalidDocument
from llmops_ingestion.domain.extract import (
    extract_text,
    validate_count,
    validate_id,
    validate_text,
)
from llmops_ingestion.domain.model import (
    DocumentRecord,
    IncomingDocument,
    PreparedDocument,
    SubmitOutcome,
)
from llmops_ingestion.ports import ChunkPublisher, DocumentStore, Redactor, Tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_document_bytes: int = 5 * 1024 * 1024
    max_batch_documents: int = 256
    max_title_chars: int = 1_000
    max_source_chars: int = 2_000  # the store's column
    max_metadata_entries: int = 64
    max_metadata_value_chars: int = 2_000


class IngestionService:
    def __init__(
        self,
        store: DocumentStore,
        publisher: ChunkPublisher,
        tokenizer: Tokenizer,
        policy: ChunkingPolicy,
        limits: Limits,
        redactor: Redactor | None = None,
    ) -> None:
        self.redactor = redactor
        self.store = store
        self.publisher = publisher
        self.tokenizer = tokenizer
        self.policy = policy
        self.limits = limits

    def prepare(self, doc: IncomingDocument) -> PreparedDocument:
        """Validates and chunks a document; raises InvalidDocument with a stable reason.

        Chunk ids depend on the version, which is assigned later; they are computed with
        version 0 here and re-keyed in `submit` once the store has chosen the version.
        """
        validate_id(doc.document_id)
        self._refuse_pii_identifiers(doc)
        validate_text(doc.title, "title", self.limits.max_title_chars)
        validate_text(doc.source, "source", self.limits.max_source_chars)
        if len(doc.metadata) > self.limits.max_metadata_entries:
            raise InvalidDocument(
                "TOO_MUCH_METADATA", f"more than {self.limits.max_metadata_entries} metadata keys"
            )
        for key, value in doc.metadata.items():
            if not key or len(value) > self.limits.max_metadata_value_chars:
                raise InvalidDocument("BAD_METADATA", f"metadata key {key[:40]!r} is empty or too long")
        text = extract_text(doc.content, doc.content_type, self.limits.max_document_bytes)
        title, source, metadata = doc.title, doc.source, dict(doc.metadata)
        if self.redactor is not None:
            # PII never reaches the store, the bus, the vector store or search results: every
            # free-text field is redacted here, for the gRPC and the Kafka path alike.
            redact = self.redactor.redact
            text, title, source = redact(text)[0], redact(title)[0], redact(source)[0]
            metadata = {key: redact(value)[0] for key, value in metadata.items()}
        # Checked after redaction: the stored title is what must fit.
        if len(title) > self.limits.max_title_chars:
            raise InvalidDocument("TITLE_TOO_LONG", f"title exceeds {self.limits.max_title_chars}")
        if len(source) > self.limits.max_source_chars:
            raise InvalidDocument("SOURCE_TOO_LONG",
                                  f"source exceeds {self.limits.max_source_chars} characters")
        chunks, dropped = chunk_document(
            doc.tenant, doc.document_id, 0, text, self.tokenizer, self.policy
        )
        fingerprint = hashlib.sha256(json.dumps(
            [text, title, source, sorted(metadata.items())], ensure_ascii=False
        ).encode()).hexdigest()
        return PreparedDocument(
            tenant=doc.tenant,
            document_id=doc.document_id,
            title=title,
            source=source,
            metadata=metadata,
            fingerprint=fingerprint,
            chunks=chunks,
            duplicates_dropped=dropped,
        )

    def _refuse_pii_identifiers(self, doc: IncomingDocument) -> None:
        """Identifiers are refused rather than redacted: the document id keys the store, the
        chunk ids, the bus and every later delete, and two ids (or metadata keys) redacted to
        the same label would collide. Neither the id nor the PII is echoed in the error."""
        if self.redactor is None:
            return
        found = self.redactor.categories(doc.document_id)
        if found:
            raise InvalidDocument(
                "DOCUMENT_ID_CONTAINS_PII",
                f"document_id contains personal data ({', '.join(found)}); use an opaque id",
            )
        for i, key in enumerate(doc.metadata):
            found = self.redactor.categories(key)
            if found:
                raise InvalidDocument(
                    "METADATA_KEY_CONTAINS_PII",
                    f"metadata key #{i} contains personal data ({', '.join(found)}); keys are "
                    "field names, put the data in a value (values are redacted)",
                )

    def _label(self, doc: IncomingDocument) -> str:
        """The document as error messages name it: its id, redacted, shortened."""
        label = doc.document_id[:80]
        return self.redactor.redact(label)[0] if self.redactor is not None else label

    def prepare_batch(self, docs: list[IncomingDocument]) -> list[PreparedDocument]:
        """All-or-nothing validation of a batch; the error names the offending index."""
        if not docs:
            raise InvalidDocument("EMPTY_BATCH", "no documents in the request")
        if len(docs) > self.limits.max_batch_documents:
            raise InvalidDocument(
                "BATCH_TOO_LARGE",
                f"{len(docs)} documents, the limit is {self.limits.max_batch_documents}",
            )
        ids = [d.document_id for d in docs]
        if len(set(ids)) != len(ids):
            raise InvalidDocument("DUPLICATE_DOCUMENT_ID", "a document id appears twice in the batch")
        prepared = []
        for i, doc in enumerate(docs):
            try:
                prepared.append(self.prepare(doc))
            except InvalidDocument as exc:
                raise InvalidDocument(
                    exc.reason, f"documents[{i}] ({self._label(doc)!r}): {exc.message}"
                ) from exc
        return prepared

    async def submit(self, doc: PreparedDocument) -> SubmitOutcome:
        record, is_new = await self.store.begin_version(doc)
        if not is_new:
            return SubmitOutcome(doc.document_id, record.version, record.chunk_count, True, 0)
        doc = replace(doc, chunks=[
            replace(c, chunk_id=chunk_id(doc.tenant, doc.document_id, record.version, c.index))
            for c in doc.chunks
        ])
        await self.publisher.publish_chunks(doc, record.version)
        await self.store.mark_published(doc.tenant, doc.document_id, record.version)
        log.info(
            "document %s v%d: %d chunks published", doc.document_id, record.version,
            len(doc.chunks), extra={"document_id": doc.document_id},
        )
        return SubmitOutcome(
            doc.document_id, record.version, len(doc.chunks), False, doc.duplicates_dropped
        )

    async def delete(self, tenant: str, document_id: str) -> int:
        validate_id(document_id)
        record = await self.store.get(tenant, document_id)
        if record is None:
            raise DocumentNotFound("DOCUMENT_NOT_FOUND", "no such document in this tenant")
        version = await self.store.mark_deleted(tenant, document_id, record.version)
        await self.publisher.publish_deleted(tenant, document_id, version)
        return version

    async def apply_external_delete(self, tenant: str, document_id: str, up_to: int) -> None:
        """A DocumentDeleted event from the bus (ours or another system's)."""
        validate_id(document_id)
        validate_count(up_to, "up_to_version")
        await self.store.mark_deleted(tenant, document_id, up_to)

    async def status(self, tenant: str, document_id: str) -> DocumentRecord:
        validate_id(document_id)
        record = await self.store.get(tenant, document_id)
        if record is None:
            raise DocumentNotFound("DOCUMENT_NOT_FOUND", "no such document in this tenant")
        return record

    async def on_indexed(
        self, tenant: str, document_id: str, version: int, batch_index: int, chunks: int
    ) -> None:
        validate_id(document_id)
        for value, name in ((version, "version"), (batch_index, "batch_index"),
                            (chunks, "chunk count")):
            validate_count(value, name)
        await self.store.record_indexed(tenant, document_id, version, batch_index, chunks)
