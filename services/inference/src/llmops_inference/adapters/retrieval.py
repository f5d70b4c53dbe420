"""Retrieval as the calling tenant (its key is forwarded): the embedding service turns the
question into a vector, the vector-store searches with it (hybrid: the text feeds BM25)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_inference.domain.model import Passage
from llmops_kit.grpc_client import call_peer


class VectorStoreRetriever:
    def __init__(self, embedding_address: str, vector_store_address: str,
                 timeout_seconds: float) -> None:
        self.channels = [grpc.aio.insecure_channel(embedding_address),
                         grpc.aio.insecure_channel(vector_store_address)]
        self.embedder = embedding_pb2_grpc.EmbeddingServiceStub(self.channels[0])
        self.store = vectorstore_pb2_grpc.VectorStoreServiceStub(self.channels[1])
        self.timeout = timeout_seconds

    async def embed(self, question: str) -> list[float]:
        resp = await call_peer(self.embedder.Embed, embedding_pb2.EmbedRequest(texts=[question]),
                               peer="embedding", timeout=self.timeout,
                               unavailable="EMBEDDING_UNAVAILABLE")
        return list(resp.vectors[0].values)

    async def search(self, question: str, vector: Sequence[float], top_k: int
                     ) -> list[Passage]:
        resp = await call_peer(
            self.store.Search,
            vectorstore_pb2.SearchRequest(query=question, vector=vector, top_k=top_k,
                                          mode=vectorstore_pb2.SEARCH_MODE_HYBRID),
            peer="vector-store", timeout=self.timeout, unavailable="RETRIEVAL_UNAVAILABLE")
        return [Passage(marker=i + 1, document_id=h.document_id, chunk_id=h.chunk_id,
                        title=h.title, text=h.text, score=h.score, chunk_index=h.chunk_index,
                        similarity=h.similarity if h.HasField("similarity") else None)
                for i, h in enumerate(resp.hits)]

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
