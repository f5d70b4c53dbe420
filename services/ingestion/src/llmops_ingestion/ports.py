"""Interfaces the ingestion domain needs; adapters implement them."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from llmops_ingestion.domain.model import DocumentRecord, PreparedDocument


@runtime_checkable
class Tokenizer(Protocol):
    name: str

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of every token of `text`, in order."""
        ...


class Redactor(Protocol):
    def redact(self, text: str) -> tuple[str, int]:
        """The text with PII replaced by labels ([EMAIL], ...) and how many were replaced."""
        ...

    def categories(self, text: str) -> tuple[str, ...]:
        """The PII categories found in `text` (sorted, each once); empty when there is none."""
        ...


class DocumentStore(Protocol):
    """Versions and states of documents; the source of truth for GetDocumentStatus."""

    async def get(self, tenant: str, document_id: str) -> DocumentRecord | None: ...

    async def begin_version(self, doc: PreparedDocument) -> tuple[DocumentRecord, bool]:
        """Records `doc` as the next version unless its fingerprint equals the current one.

        Returns the record and whether it is new. An unchanged document that was never
        published (a crash between store and publish) returns new=True again so it is
        re-published with the same version and chunk ids.
        """
        ...

    async def mark_published(self, tenant: str, document_id: str, version: int) -> None: ...

    async def mark_deleted(self, tenant: str, document_id: str, up_to_version: int) -> int:
        """Marks the document deleted; returns the version deleted (0 if unknown)."""
        ...

    async def record_indexed(
        self, tenant: str, document_id: str, version: int, batch_index: int, chunks: int
    ) -> None: ...


class ChunkPublisher(Protocol):
    async def publish_chunks(self, doc: PreparedDocument, version: int) -> None: ...

    async def publish_deleted(self, tenant: str, document_id: str, up_to_version: int) -> None: ...
