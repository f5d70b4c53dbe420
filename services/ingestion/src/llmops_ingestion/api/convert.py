"""Protobuf <-> domain translation, at the edge only."""

from __future__ import annotations

from llmops.ingestion.v1 import ingestion_pb2
from llmops_ingestion.domain.model import ContentType, DocumentState, IncomingDocument

_CONTENT_TYPES = {
    ingestion_pb2.CONTENT_TYPE_TEXT: ContentType.TEXT,
    ingestion_pb2.CONTENT_TYPE_MARKDOWN: ContentType.MARKDOWN,
    ingestion_pb2.CONTENT_TYPE_HTML: ContentType.HTML,
}
STATES = {
    DocumentState.CHUNKED: ingestion_pb2.DOCUMENT_STATE_CHUNKED,
    DocumentState.INDEXED: ingestion_pb2.DOCUMENT_STATE_INDEXED,
    DocumentState.DELETED: ingestion_pb2.DOCUMENT_STATE_DELETED,
}


def incoming(tenant: str, doc: ingestion_pb2.Document) -> IncomingDocument:
    return IncomingDocument(
        tenant=tenant,
        document_id=doc.document_id,
        title=doc.title,
        source=doc.source,
        content_type=_CONTENT_TYPES.get(doc.content_type),
        content=doc.content,
        metadata=dict(doc.metadata),
    )
