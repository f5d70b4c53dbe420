"""Vector-store settings: the Weaviate backend is a discriminated union (local | remote)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr

from llmops_kit.settings import ServiceSettings, service_config


class LocalWeaviate(BaseModel):
    """A weaviate-server on this machine (infra/scripts/weaviate.sh), no auth."""

    kind: Literal["local"] = "local"
    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 50051


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

    address: str = "127.0.0.1:50062"
    # When unset, the caller's own `x-api-key` is forwarded, so the embedding service sees the
    # same tenant as the vector-store did. Set it to call with one service key instead.
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)


class Settings(ServiceSettings):
    model_config = service_config("LLMOPS_VECTORSTORE_")

    service_name: str = "vector-store"
    grpc_port: int = 50063
    weaviate: WeaviateBackend = Field(default_factory=LocalWeaviate)
    # Seconds to keep retrying the first connection (Weaviate may still be starting).
    weaviate_connect_timeout_seconds: float = Field(default=60.0, ge=0)
    collection: str = "LlmopsChunk"
    documents_collection: str = "LlmopsDocument"
    # Every vector written or searched must have this length (the embedding model's).
    dimensions: int = Field(default=384, ge=1)
    embedding: EmbeddingClientSettings = Field(default_factory=EmbeddingClientSettings)
    consumer_group: str = "vector-store"
    max_records: int = Field(default=64, ge=1)
    # Documents of one Kafka batch written concurrently (each document stays in order).
    write_concurrency: int = Field(default=8, ge=1)

    @property
    def deletes_consumer_group(self) -> str:
        return f"{self.consumer_group}-deletes"
