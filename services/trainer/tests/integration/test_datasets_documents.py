"""GrpcDocumentSource against stand-ins of ingestion and the vector store on real gRPC sockets:
the chunk ids it asks for, the caller's key passed on, overlap removed, errors kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from llmops.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_ingestion.domain.chunking import chunk_id as ingestion_chunk_id
from llmops_kit.context import bound
from llmops_kit.errors import FailedPrecondition, NotFound
from llmops_trainer.datasets.sources import GrpcDocumentSource, chunk_id, merge_chunks

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TEXT = "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi."
# Windows with an overlap of "epsilon zeta eta " and "iota kappa lambda ", as ingestion cuts them.
WINDOWS = ["Alpha beta gamma delta epsilon zeta eta", "epsilon zeta eta theta iota kappa lambda",
           "iota kappa lambda mu nu xi omicron pi."]


def test_chunk_ids_match_ingestions() -> None:
    assert chunk_id("acme", "a.md", 3, 7) == ingestion_chunk_id("acme", "a.md", 3, 7)


def test_merge_removes_the_overlap_of_consecutive_windows() -> None:
    assert merge_chunks(WINDOWS) == TEXT
    # No common run: the windows are joined by a newline (a dropped duplicate window, say).
    assert merge_chunks(["First part here.", "Second part there."]) == \
        "First part here.\nSecond part there."
    assert merge_chunks([]) == ""


class Ingestion(ingestion_pb2_grpc.IngestionServiceServicer):
    def __init__(self) -> None:
        self.keys: list[str] = []

    async def GetDocumentStatus(self, request: Any, context: Any) -> Any:
        self.keys.append(dict(context.invocation_metadata())["x-api-key"])
        if request.document_id == "missing.md":
            context.set_trailing_metadata((("x-error-reason", "DOCUMENT_NOT_FOUND"),))
            await context.abort(grpc.StatusCode.NOT_FOUND, "DOCUMENT_NOT_FOUND: no such document")
        state = (ingestion_pb2.DOCUMENT_STATE_CHUNKED if request.document_id == "new.md"
                 else ingestion_pb2.DOCUMENT_STATE_INDEXED)
        return ingestion_pb2.GetDocumentStatusResponse(
            document_id=request.document_id, state=state, version=2, chunk_count=len(WINDOWS))


class VectorStore(vectorstore_pb2_grpc.VectorStoreServiceServicer):
    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def GetChunks(self, request: Any, context: Any) -> Any:
        self.asked.append(list(request.chunk_ids))
        known = {chunk_id("acme", "a.md", 2, i): (i, t) for i, t in enumerate(WINDOWS)}
        hits = [vectorstore_pb2.SearchHit(chunk_id=c, document_id="a.md", chunk_index=known[c][0],
                                          text=known[c][1]) for c in request.chunk_ids if c in known]
        return vectorstore_pb2.GetChunksResponse(chunks=list(reversed(hits)))


@pytest.fixture
async def peers() -> AsyncIterator[tuple[GrpcDocumentSource, Ingestion, VectorStore]]:
    ingestion, store = Ingestion(), VectorStore()
    server = grpc.aio.server()
    ingestion_pb2_grpc.add_IngestionServiceServicer_to_server(ingestion, server)
    vectorstore_pb2_grpc.add_VectorStoreServiceServicer_to_server(store, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        address = f"127.0.0.1:{port}"
        yield GrpcDocumentSource(address, address, timeout=10), ingestion, store
    finally:
        await server.stop(0)


async def test_reads_a_document_as_the_caller(peers: Any) -> None:
    source, ingestion, store = peers
    with bound("acme", "trace-1", "k-acme"):
        [doc] = await source.fetch("acme", ["a.md"])
    assert (doc.document_id, doc.version, doc.text) == ("a.md", 2, TEXT)
    assert store.asked == [[chunk_id("acme", "a.md", 2, i) for i in range(3)]]
    assert ingestion.keys == ["k-acme"]


async def test_missing_unindexed_and_incomplete_documents_fail_with_reasons(peers: Any) -> None:
    source, _, _ = peers
    with bound("acme", "t", "k-acme"):
        with pytest.raises(NotFound) as nf:
            await source.fetch("acme", ["missing.md"])
        assert nf.value.reason == "DOCUMENT_NOT_FOUND"
        with pytest.raises(FailedPrecondition) as fp:
            await source.fetch("acme", ["new.md"])
        assert fp.value.reason == "DOCUMENT_NOT_INDEXED"
        with pytest.raises(FailedPrecondition) as other:  # chunk ids of another tenant: none found
            await source.fetch("globex", ["a.md"])
        assert other.value.reason == "DOCUMENT_NOT_INDEXED" and "0 of 3" in other.value.message
