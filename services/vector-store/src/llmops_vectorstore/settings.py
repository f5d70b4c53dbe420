"""Vector-store settings: the Weaviate backend is a discriminated union (local | remote)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr

from llmops_kit import ports
from llmops_kit.settings import ServiceSettings, read_secret, secret_file, service_config
from llmops_vectorstore.domain.ranking import Fusion, HybridRanking


class LocalWeaviate(BaseModel):
    """A weaviate-server on this machine (infra/scripts/weaviate.sh), with its API key.

    The key is the file weaviate.sh generates ($LLMOPS_HOME/secrets/weaviate.key) unless
    `api_key` is set. No file and no key: anonymous, for a server started without auth.
    """

    kind: Literal["local"] = "local"
    host: str = Field(default_factory=ports.local_host)
    http_port: int = Field(default_factory=lambda: ports.port("WEAVIATE_PORT"))
    grpc_port: int = Field(default_factory=lambda: ports.port("WEAVIATE_GRPC_PORT"))
    api_key: SecretStr | None = None
    # The file weaviate.sh writes (it reads WEAVIATE_API_KEY_FILE too).
    api_key_file: Path = Field(default_factory=lambda: Path(
        os.environ.get("WEAVIATE_API_KEY_FILE") or secret_file("weaviate.key")))

    def credentials(self) -> SecretStr | None:
        """The API key to send: the setting, else the key file's, else None (anonymous)."""
        if self.api_key is not None:
            return self.api_key
        if not self.api_key_file.exists():
            return None
        return read_secret(self.api_key_file, "weaviate api_key_file")


class RemoteWeaviate(BaseModel):
    """A Weaviate cluster; REST and gRPC endpoints are given separately."""

    kind: Literal["remote"]
    http_host: str
    http_port: int = 443
    http_secure: bool = True
    grpc_host: str
    grpc_port: int = 443
    grpc_secure: bool = True
    api_key: SecretStr | None = None


WeaviateBackend = Annotated[LocalWeaviate | RemoteWeaviate, Field(discriminator="kind")]


class EmbeddingClientSettings(BaseModel):
    """How Search reaches the embedding service to embed query text."""

    address: str = Field(default_factory=lambda: ports.service_address("embedding"))
    # When unset, the caller's own `x-api-key` is forwarded, so the embedding service sees the
    # same tenant as the vector-store did. Set it to call with one service key instead.
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)


class HybridSearchSettings(BaseModel):
    """How hybrid search ranks (domain/ranking.py); chosen on the evaluation set with
    bench/hybrid_search_review.py (docs/testing.md, "Hybrid search review")."""

    # Weight of the vector half when a request sets no alpha (1: vector only, 0: BM25 only).
    # 0.25 had the best MRR on the set (the English-only MiniLM ranks Korean poorly; a
    # multilingual model may move it up: re-run the review after changing the model).
    alpha: float = Field(default=0.25, ge=0.0, le=1.0)
    # relative_score: each half's scores scaled to 0..1 and weighted; ranked: reciprocal rank
    # (as good or better than relative_score at every alpha on the set).
    fusion: Literal["relative_score", "ranked"] = "ranked"
    # Leave English question words ("what", "do", "I", "my"...) out of the BM25 half: without
    # it "What do I do if my laptop is lost or stolen?" ranks the IT FAQ ("do I") first.
    question_stopwords: bool = True

    def ranking(self) -> HybridRanking:
        return HybridRanking(self.alpha, Fusion(self.fusion), self.question_stopwords)


class Settings(ServiceSettings):
    model_config = service_config("LLMOPS_VECTORSTORE_")

    service_name: str = "vector-store"
    grpc_port: int = Field(default_factory=lambda: ports.service_port("vector-store"))
    weaviate: WeaviateBackend = Field(default_factory=LocalWeaviate)
    # Seconds to keep retrying the first connection (Weaviate may still be starting).
    weaviate_connect_timeout_seconds: float = Field(default=60.0, ge=0)
    # The first embedding model's chunk collection; each later model gets
    # "<collection>_<model>" (docs/operations.md, "Switching the embedding model").
    collection: str = "LlmopsChunk"
    documents_collection: str = "LlmopsDocument"
    # Which collection holds which model and which one searches read (shared by replicas).
    state_collection: str = "LlmopsEmbeddingState"
    # The embedding model of the first start (later: `llmops embeddings switch`) and the
    # length of its vectors. Must match the embedding service's default model.
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    dimensions: int = Field(default=384, ge=1)
    # The BM25 tokenization of the text property in collections created from now on:
    # "word" (English and other space-separated languages) or "kagome_kr" (Korean
    # morphemes; Weaviate needs ENABLE_TOKENIZER_KAGOME_KR=true). Existing collections keep
    # theirs: a switch builds a new collection with this one.
    text_tokenization: Literal["word", "kagome_kr", "kagome_ja", "gse", "trigram"] = "word"
    # Seconds a replica trusts its copy of the embedding state.
    state_refresh_seconds: float = Field(default=2.0, gt=0, le=30)
    # Chunks re-embedded per embedding call during a switch (the service takes <= 256).
    reembed_page_size: int = Field(default=64, ge=1, le=256)
    hybrid: HybridSearchSettings = Field(default_factory=HybridSearchSettings)
    embedding: EmbeddingClientSettings = Field(default_factory=EmbeddingClientSettings)
    consumer_group: str = "vector-store"
    max_records: int = Field(default=64, ge=1)
    # Documents of one Kafka batch written concurrently (each document stays in order).
    write_concurrency: int = Field(default=8, ge=1)

    @property
    def deletes_consumer_group(self) -> str:
        return f"{self.consumer_group}-deletes"
