"""DocumentStore on SQLAlchemy: SQLite by default, Postgres by URL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Integer, String, delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from llmops_ingestion.domain.model import DocumentRecord, DocumentState, PreparedDocument
from llmops_kit import db


class Base(DeclarativeBase):
    pass


class DocumentRow(Base):
    __tablename__ = "documents"
    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    document_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(1000), default="")
    source: Mapped[str] = mapped_column(String(2000), default="")
    state: Mapped[str] = mapped_column(String(16))
    chunk_count: Mapped[int] = mapped_column(Integer)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IndexedBatchRow(Base):
    """One row per (version, batch) confirmed by the vector store; replays hit the primary key."""

    __tablename__ = "indexed_batches"
    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    document_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    chunks: Mapped[int] = mapped_column(Integer)


def make_engine(url: str) -> Engine:
    engine = db.make_engine(url)
    db.create_schema(Base.metadata, engine)
    return engine


class SqlDocumentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Read-then-write transactions: BEGIN IMMEDIATE on SQLite (which ignores FOR UPDATE),
        # row locks on Postgres.
        self._writer = db.writer(engine)

    def _record(self, row: DocumentRow, session: Session) -> DocumentRecord:
        indexed = session.scalar(
            select(func.coalesce(func.sum(IndexedBatchRow.chunks), 0)).where(
                IndexedBatchRow.tenant == row.tenant,
                IndexedBatchRow.document_id == row.document_id,
                IndexedBatchRow.version == row.version,
            )
        ) or 0
        state = DocumentState(row.state)
        if state is DocumentState.CHUNKED and row.published and indexed >= row.chunk_count:
            state = DocumentState.INDEXED
        return DocumentRecord(
            tenant=row.tenant,
            document_id=row.document_id,
            version=row.version,
            fingerprint=row.fingerprint,
            title=row.title,
            source=row.source,
            state=state,
            chunk_count=row.chunk_count,
            indexed_chunk_count=min(int(indexed), row.chunk_count),
            published=row.published,
            updated_at=row.updated_at,
        )

    def _get(self, tenant: str, document_id: str) -> DocumentRecord | None:
        with Session(self.engine) as s:
            row = s.get(DocumentRow, (tenant, document_id))
            return self._record(row, s) if row else None

    async def get(self, tenant: str, document_id: str) -> DocumentRecord | None:
        return await asyncio.to_thread(self._get, tenant, document_id)

    def _begin(self, doc: PreparedDocument) -> tuple[DocumentRecord, bool]:
        now = datetime.now(UTC)
        with Session(self._writer) as s, s.begin():
            row = s.get(DocumentRow, (doc.tenant, doc.document_id), with_for_update=True)
            if row is None:
                row = DocumentRow(tenant=doc.tenant, document_id=doc.document_id, version=1)
                s.add(row)
            elif row.fingerprint == doc.fingerprint and row.state != DocumentState.DELETED.value:
                # Same content: nothing new, unless the last attempt never reached the bus.
                return self._record(row, s), not row.published
            else:
                row.version += 1
            row.fingerprint = doc.fingerprint
            row.title = doc.title
            row.source = doc.source
            row.state = DocumentState.CHUNKED.value
            row.chunk_count = len(doc.chunks)
            row.published = False
            row.updated_at = now
            s.flush()
            return self._record(row, s), True

    async def begin_version(self, doc: PreparedDocument) -> tuple[DocumentRecord, bool]:
        return await asyncio.to_thread(self._begin, doc)

    def _mark_published(self, tenant: str, document_id: str, version: int) -> None:
        # Reads, then writes: IMMEDIATE, or SQLite fails it at once when another writer got in.
        with Session(self._writer) as s, s.begin():
            row = s.get(DocumentRow, (tenant, document_id))
            if row is not None and row.version == version:
                row.published = True

    async def mark_published(self, tenant: str, document_id: str, version: int) -> None:
        await asyncio.to_thread(self._mark_published, tenant, document_id, version)

    def _mark_deleted(self, tenant: str, document_id: str, up_to_version: int) -> int:
        with Session(self._writer) as s, s.begin():
            row = s.get(DocumentRow, (tenant, document_id), with_for_update=True)
            if row is None:
                return up_to_version
            if up_to_version == 0 or up_to_version >= row.version:
                row.state = DocumentState.DELETED.value
                row.updated_at = datetime.now(UTC)
            return row.version if up_to_version == 0 else up_to_version

    async def mark_deleted(self, tenant: str, document_id: str, up_to_version: int) -> int:
        return await asyncio.to_thread(self._mark_deleted, tenant, document_id, up_to_version)

    def _record_indexed(
        self, tenant: str, document_id: str, version: int, batch_index: int, chunks: int
    ) -> None:
        values = {"tenant": tenant, "document_id": document_id, "version": version,
                  "batch_index": batch_index, "chunks": chunks}
        with Session(self.engine) as s, s.begin():
            s.execute(db.insert_ignore(self.engine, IndexedBatchRow, values))

    async def record_indexed(
        self, tenant: str, document_id: str, version: int, batch_index: int, chunks: int
    ) -> None:
        await asyncio.to_thread(
            self._record_indexed, tenant, document_id, version, batch_index, chunks
        )

    def _delete_tenant(self, tenant: str) -> int:
        with Session(self._writer) as s, s.begin():
            batches = s.execute(delete(IndexedBatchRow).where(IndexedBatchRow.tenant == tenant))
            documents = s.execute(delete(DocumentRow).where(DocumentRow.tenant == tenant))
            return int(documents.rowcount or 0) + int(batches.rowcount or 0)  # type: ignore[attr-defined]

    async def delete_tenant(self, tenant: str) -> int:
        """Every row of the tenant (documents and indexed batches); TenantDeleted calls it."""
        return await asyncio.to_thread(self._delete_tenant, tenant)
