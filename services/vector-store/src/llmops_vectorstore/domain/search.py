"""Search, GetChunks and Stats: validation and query embedding; the store does the rest."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from llmops_kit.errors import FailedPrecondition, InvalidArgument
from llmops_vectorstore.domain.indexing import check_vector
from llmops_vectorstore.domain.model import (
    Hit,
    SearchMode,
    SearchRequest,
    SearchResult,
    StoreQuery,
    StoreStats,
)
from llmops_vectorstore.domain.ranking import HybridRanking
from llmops_vectorstore.ports import ActiveModel, ChunkStore, QueryEmbedder

DEFAULT_TOP_K = 5
MAX_TOP_K = 100
DEFAULT_ALPHA = 0.5
MAX_QUERY_CHARS = 20_000
MAX_FILTERS = 32
MAX_CHUNK_IDS = 1000


def _mode(request: SearchRequest) -> SearchMode:
    if request.mode is not None:
        return request.mode
    # Unspecified: hybrid when there is text to match, else a pure vector search.
    return SearchMode.HYBRID if request.query.strip() else SearchMode.VECTOR


def _alpha(request: SearchRequest, default: float) -> float:
    if request.alpha is None:
        return default
    if math.isnan(request.alpha) or not 0.0 <= request.alpha <= 1.0:
        raise InvalidArgument("BAD_ALPHA", f"alpha must be within 0..1, got {request.alpha}")
    return request.alpha


def _check_filters(request: SearchRequest) -> None:
    if len(request.filters) > MAX_FILTERS:
        raise InvalidArgument(
            "TOO_MANY_FILTERS", f"{len(request.filters)} filters; at most {MAX_FILTERS}"
        )
    for i, f in enumerate(request.filters):
        if not f.key.strip():
            raise InvalidArgument("BAD_FILTER", f"filters[{i}] has no key")
        if "=" in f.key:
            raise InvalidArgument("BAD_FILTER", f"filters[{i}]: key {f.key!r} contains '='")


def _same_model(request: SearchRequest, model: str, dimensions: int) -> bool:
    """Whether the caller's vector can be compared with the active collection's vectors."""
    if request.vector_model and model:
        return request.vector_model == model
    # Unnamed: only a different length is known to be another model (checked as before).
    return not model or len(request.vector) == dimensions


class SearchService:
    def __init__(
        self, store: ChunkStore, embedder: QueryEmbedder, dimensions: int,
        models: ActiveModel | None = None, *, ranking: HybridRanking | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.dimensions = dimensions
        # The active collection's model (queries are embedded with it); None: the embedding
        # service's default model and `dimensions`.
        self.models = models
        # Hybrid defaults: alpha (a request's own wins), fusion, question stopwords.
        self.ranking = ranking or HybridRanking(DEFAULT_ALPHA)

    async def _model(self) -> tuple[str, int]:
        if self.models is None:
            return "", self.dimensions
        active = await self.models.active_model()
        return active.model, active.dimensions

    async def search(self, tenant: str, request: SearchRequest) -> SearchResult:
        query = await self.plan(request)
        hits = await self.store.search(tenant, query)
        return SearchResult(hits, query.mode)

    async def plan(self, request: SearchRequest) -> StoreQuery:
        """Validates the request and fills in defaults and, when needed, the query vector."""
        mode = _mode(request)
        text = request.query.strip()
        if len(request.query) > MAX_QUERY_CHARS:
            raise InvalidArgument(
                "QUERY_TOO_LONG", f"query has {len(request.query)} characters; at most "
                f"{MAX_QUERY_CHARS}"
            )
        if request.top_k > MAX_TOP_K:
            raise InvalidArgument("TOP_K_TOO_LARGE", f"top_k={request.top_k}; at most {MAX_TOP_K}")
        if request.top_k < 0:
            raise InvalidArgument("BAD_TOP_K", f"top_k={request.top_k} is negative")
        hybrid = mode is SearchMode.HYBRID
        alpha = _alpha(request, self.ranking.alpha) if hybrid else self.ranking.alpha
        _check_filters(request)
        if mode.needs_text and not text:
            raise InvalidArgument("EMPTY_QUERY", f"{mode.value} search needs query text")
        vector: list[float] | None = None
        if mode.needs_vector:
            model, dimensions = await self._model()
            if request.vector and not _same_model(request, model, dimensions):
                if text:
                    # Made by another model than the active collection's (after a switch):
                    # the text is embedded again below, with the right one.
                    request = replace(request, vector=())
                elif request.vector_model:
                    raise FailedPrecondition(
                        "EMBEDDING_MODEL_MISMATCH",
                        f"the vector was made by {request.vector_model}; searches use {model}: "
                        f"send the query text or a vector of {model}",
                    )
            if request.vector:
                vector = list(request.vector)
                check_vector(vector, dimensions, "vector", "VECTOR_DIMENSION_MISMATCH")
            elif text:
                vector = await (self.embedder.embed_query(text, model) if model
                                else self.embedder.embed_query(text))
                if len(vector) != dimensions:
                    raise FailedPrecondition(
                        "EMBEDDING_DIMENSION_MISMATCH",
                        f"embedding service returned {len(vector)} dimensions; the store holds "
                        f"{dimensions}",
                    )
            else:
                raise InvalidArgument("EMPTY_QUERY", "vector search needs a query or a vector")
        return StoreQuery(
            mode=mode,
            limit=request.top_k or DEFAULT_TOP_K,
            text=text,
            vector=vector,
            alpha=alpha,
            filters=tuple(request.filters),
            fusion=self.ranking.fusion,
            keyword_text=self.ranking.keyword_text(text) if hybrid else "",
        )

    async def get_chunks(self, tenant: str, chunk_ids: Sequence[str]) -> list[Hit]:
        if len(chunk_ids) > MAX_CHUNK_IDS:
            raise InvalidArgument(
                "TOO_MANY_CHUNK_IDS", f"{len(chunk_ids)} ids; at most {MAX_CHUNK_IDS}"
            )
        for i, chunk_id in enumerate(chunk_ids):
            if not chunk_id.strip():
                raise InvalidArgument("EMPTY_CHUNK_ID", f"chunk_ids[{i}] is empty")
        if not chunk_ids:
            return []
        return await self.store.get_chunks(tenant, list(dict.fromkeys(chunk_ids)))

    async def stats(self, tenant: str) -> StoreStats:
        return await self.store.stats(tenant)
