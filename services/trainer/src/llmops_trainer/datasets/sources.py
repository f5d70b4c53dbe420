"""A tenant's ingested documents as plain text (continued pre-training).

No service lists a tenant's documents or returns a document's text, so the adapter reads what
exists: ingestion's GetDocumentStatus gives the current version and chunk count of a document,
its chunk ids are deterministic (ingestion's `chunk_id`: uuid5 of tenant/document/version/index
in a fixed namespace), and the vector store's GetChunks returns their texts, which are joined
back into the document with the windows' overlap removed. Both calls are made as the caller
(its API key), so a tenant reads only its own documents.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from llmops.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_kit.errors import FailedPrecondition
from llmops_kit.grpc_client import call_peer

# Ingestion's chunk id namespace (llmops_ingestion.domain.chunking.CHUNK_NAMESPACE): a contract
# of the chunk ids, fixed across releases; a test checks the two agree.
CHUNK_NAMESPACE = uuid.UUID("6f1c2b0e-3d8a-4b57-9a51-1f6f0a7e2c43")
MAX_CHUNK_IDS = 1000  # the vector store's GetChunks limit
MIN_OVERLAP = 8  # characters: shorter common runs are coincidence, not the windows' overlap


@dataclass(frozen=True)
class SourceDocument:
    document_id: str
    version: int
    text: str


class DocumentSource(Protocol):
    async def fetch(self, tenant: str, document_ids: Sequence[str]) -> list[SourceDocument]:
        """The current text of each document; NotFound / FailedPrecondition when one is missing
        or not (fully) indexed yet."""
        ...


def chunk_id(tenant: str, document_id: str, version: int, index: int) -> str:
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{tenant}/{document_id}/{version}/{index}"))


def merge_chunks(texts: Sequence[str]) -> str:
    """Consecutive overlapping windows joined into one text: the longest suffix of what is
    joined so far that starts the next window is not repeated."""
    merged = ""
    for text in texts:
        if not merged:
            merged = text
            continue
        overlap = 0
        for size in range(min(len(merged), len(text)), MIN_OVERLAP - 1, -1):
            if merged.endswith(text[:size]):
                overlap = size
                break
        merged = merged + text[overlap:] if overlap else f"{merged}\n{text}"
    return merged


class GrpcDocumentSource:
    def __init__(self, ingestion_address: str, vectorstore_address: str, timeout: float) -> None:
        self.ingestion_address = ingestion_address
        self.vectorstore_address = vectorstore_address
        self.timeout = timeout

    async def fetch(self, tenant: str, document_ids: Sequence[str]) -> list[SourceDocument]:
        out = []
        async with grpc.aio.insecure_channel(self.ingestion_address) as ich, \
                grpc.aio.insecure_channel(self.vectorstore_address) as vch:
            ingestion = ingestion_pb2_grpc.IngestionServiceStub(ich)
            store = vectorstore_pb2_grpc.VectorStoreServiceStub(vch)
            for document_id in document_ids:
                status = await call_peer(
                    ingestion.GetDocumentStatus,
                    ingestion_pb2.GetDocumentStatusRequest(document_id=document_id),
                    peer="ingestion", timeout=self.timeout, unavailable="INGESTION_UNAVAILABLE")
                if status.state != ingestion_pb2.DOCUMENT_STATE_INDEXED or not status.chunk_count:
                    raise FailedPrecondition("DOCUMENT_NOT_INDEXED",
                                             f"document {document_id} is not indexed (yet)")
                if status.chunk_count > MAX_CHUNK_IDS:
                    raise FailedPrecondition("DOCUMENT_TOO_LARGE",
                                             f"document {document_id} has {status.chunk_count} "
                                             f"chunks; at most {MAX_CHUNK_IDS}")
                ids = [chunk_id(tenant, document_id, status.version, i)
                       for i in range(status.chunk_count)]
                found = await call_peer(
                    store.GetChunks, vectorstore_pb2.GetChunksRequest(chunk_ids=ids),
                    peer="vector-store", timeout=self.timeout, unavailable="VECTORSTORE_UNAVAILABLE")
                chunks = sorted(found.chunks, key=lambda c: c.chunk_index)
                if len(chunks) < status.chunk_count:
                    raise FailedPrecondition("DOCUMENT_NOT_INDEXED",
                                             f"document {document_id}: {len(chunks)} of "
                                             f"{status.chunk_count} chunks are searchable")
                out.append(SourceDocument(document_id, status.version,
                                          merge_chunks([c.text for c in chunks])))
        return out
