"""Retrieval through the vector-store service, as the calling tenant (its key is forwarded)."""

from __future__ import annotations

import grpc

from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_inference.domain.model import Passage
from llmops_kit.errors import Unavailable
from llmops_kit.grpc_server import caller_metadata


class VectorStoreRetriever:
    def __init__(self, address: str, timeout_seconds: float) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = vectorstore_pb2_grpc.VectorStoreServiceStub(self.channel)
        self.timeout = timeout_seconds

    async def retrieve(self, question: str, top_k: int) -> list[Passage]:
        try:
            resp = await self.stub.Search(
                vectorstore_pb2.SearchRequest(query=question, top_k=top_k,
                                              mode=vectorstore_pb2.SEARCH_MODE_HYBRID),
                metadata=caller_metadata(), timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable("RETRIEVAL_UNAVAILABLE",
                              f"vector-store: {exc.code().name}: {exc.details()}") from exc
        return [Passage(marker=i + 1, document_id=h.document_id, chunk_id=h.chunk_id,
                        title=h.title, text=h.text, score=h.score)
                for i, h in enumerate(resp.hits)]

    async def close(self) -> None:
        await self.channel.close()
