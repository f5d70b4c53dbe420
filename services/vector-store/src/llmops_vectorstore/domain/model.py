"""Plain data the vector-store domain works with (no protobuf, no Weaviate types)."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmops_vectorstore.domain.ranking import Fusion


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk with its vector and the document fields every chunk carries."""

    chunk_id: str
    document_id: str
    document_version: int
    chunk_index: int
    text: str
    vector: Sequence[float]
    title: str = ""
    source: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    # The embedding model that made `vector` ("": not said; taken as the active model's).
    model: str = ""


@dataclass(frozen=True)
class VectorBatch:
    """The chunks of one ChunkVectors event: part of one version of one document."""

    document_id: str
    version: int
    chunks: Sequence[ChunkRecord]
    total_chunks: int = 0
    batch_index: int = 0
    batch_count: int = 1
    model: str = ""


@dataclass(frozen=True)
class DocumentState:
    """What the store remembers per document to order versions and deletes.

    latest_version: the newest version whose chunks were written.
    deleted_up_to_version: every version <= this is deleted and must never come back.
    """

    document_id: str
    latest_version: int = 0
    deleted_up_to_version: int = 0

    @property
    def live(self) -> bool:
        return self.latest_version > self.deleted_up_to_version


class SearchMode(enum.Enum):
    VECTOR = "vector"
    HYBRID = "hybrid"
    KEYWORD = "keyword"

    @property
    def needs_vector(self) -> bool:
        return self is not SearchMode.KEYWORD

    @property
    def needs_text(self) -> bool:
        return self is not SearchMode.VECTOR


# Filter keys that address chunk fields; any other key addresses document metadata.
FIELD_KEYS = frozenset({"document_id", "source", "title"})


@dataclass(frozen=True)
class Filter:
    key: str
    equals: str


@dataclass(frozen=True)
class SearchRequest:
    """A search as the caller sent it (unvalidated)."""

    query: str = ""
    vector: Sequence[float] = ()
    top_k: int = 0
    mode: SearchMode | None = None
    alpha: float | None = None
    filters: Sequence[Filter] = ()
    # The model that made `vector` ("": not said).
    vector_model: str = ""


@dataclass(frozen=True)
class StoreQuery:
    """A validated search, ready for the store: the vector is present when the mode needs it."""

    mode: SearchMode
    limit: int
    text: str = ""
    vector: Sequence[float] | None = None
    alpha: float = 0.5
    filters: Sequence[Filter] = ()
    # Hybrid only: how the two halves' lists are fused, and the text BM25 searches (the
    # query without question words; `text` when empty).
    fusion: Fusion = Fusion.RELATIVE_SCORE
    keyword_text: str = ""

    @property
    def bm25_text(self) -> str:
        return self.keyword_text or self.text


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    document_id: str
    document_version: int
    chunk_index: int
    text: str
    score: float
    title: str = ""
    source: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    model: str = ""
    # Cosine similarity of the chunk's vector to the query's (vector and hybrid searches;
    # None for keyword search). Unlike a hybrid score, comparable across queries.
    similarity: float | None = None


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    mode: SearchMode


@dataclass(frozen=True)
class StoreStats:
    chunk_count: int
    document_count: int
    collection: str
