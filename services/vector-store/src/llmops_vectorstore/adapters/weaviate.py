"""The ChunkStore port on Weaviate (weaviate-client v4, async API).

Isolation: every call goes through `collection.with_tenant(tenant_name(tenant))`, so a query
can only ever see the caller's own tenant shard. A tenant Weaviate has never seen answers
empty results instead of Weaviate's "tenant not found".
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import weaviate
from weaviate.classes.aggregate import GroupByAggregate
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.classes.tenants import Tenant
from weaviate.collections import CollectionAsync
from weaviate.collections.classes.filters import _Filters
from weaviate.collections.classes.internal import Object
from weaviate.exceptions import UnexpectedStatusCodeError

from llmops_vectorstore.adapters import weaviate_schema as schema
from llmops_vectorstore.adapters.weaviate_schema import tenant_name
from llmops_vectorstore.domain.model import (
    FIELD_KEYS,
    ChunkRecord,
    DocumentState,
    Hit,
    SearchMode,
    StoreQuery,
    StoreStats,
)
from llmops_vectorstore.domain.model import Filter as FieldFilter
from llmops_vectorstore.domain.ranking import Fusion, cosine

log = logging.getLogger(__name__)

# Weaviate's batch delete removes at most QUERY_MAXIMUM_RESULTS objects per call.
_MAX_DELETE_ROUNDS = 1000
# Documents counted by stats (one aggregation group each); beyond it the count is a floor.
_MAX_GROUPS = 100_000

Collection = CollectionAsync[Any, Any]


class WeaviateStore:
    def __init__(
        self, client: weaviate.WeaviateAsyncClient, chunks: str, documents: str,
        tokenization: str = "word",
    ) -> None:
        self.client = client
        self.chunks_name = chunks
        self.documents_name = documents
        self.tokenization = tokenization
        self._chunks = client.collections.use(chunks)
        self._documents = client.collections.use(documents)
        self._known_tenants: set[str] = set()

    async def ensure_schema(self) -> None:
        await schema.ensure_collection(
            self.client, self.chunks_name,
            lambda client, name: schema.create_chunk_collection(client, name, self.tokenization),
        )
        await schema.ensure_model_property(self.client, self.chunks_name)
        await schema.ensure_collection(
            self.client, self.documents_name, schema.create_document_collection
        )

    async def close(self) -> None:
        await self.client.close()

    async def ready(self) -> bool:
        """Whether Weaviate answers its readiness check (the event bus's health probe)."""
        try:
            return bool(await self.client.is_ready())
        except Exception:
            return False

    # ------------------------------------------------------------------ tenants

    async def _has_tenant(self, name: str) -> bool:
        if name in self._known_tenants:
            return True
        if await self._chunks.tenants.exists(name) and await self._documents.tenants.exists(name):
            self._known_tenants.add(name)
            return True
        return False

    async def _ensure_tenant(self, name: str) -> None:
        if await self._has_tenant(name):
            return
        for collection in (self._chunks, self._documents):
            if await collection.tenants.exists(name):
                continue
            try:
                await collection.tenants.create([Tenant(name=name)])
            except UnexpectedStatusCodeError:
                if not await collection.tenants.exists(name):
                    raise
        self._known_tenants.add(name)

    async def _write(self, tenant: str) -> tuple[Collection, Collection]:
        name = tenant_name(tenant)
        await self._ensure_tenant(name)
        return self._chunks.with_tenant(name), self._documents.with_tenant(name)

    async def _read(self, tenant: str) -> tuple[Collection, Collection] | None:
        name = tenant_name(tenant)
        if not await self._has_tenant(name):
            return None
        return self._chunks.with_tenant(name), self._documents.with_tenant(name)

    async def delete_tenant(self, tenant: str) -> int:
        """Removes the tenant's Weaviate tenant from both collections: all its chunks and
        document states go with it. Returns how many objects were removed (0 when absent)."""
        name = tenant_name(tenant)
        removed = 0
        for collection in (self._chunks, self._documents):
            if not await collection.tenants.exists(name):
                continue
            counted = await collection.with_tenant(name).aggregate.over_all(total_count=True)
            removed += counted.total_count or 0
            await collection.tenants.remove([name])
        self._known_tenants.discard(name)
        return removed

    async def forget_tenant(self, tenant: str) -> int:
        """Drops this process's note that the tenant exists (another replica removed it)."""
        self._known_tenants.discard(tenant_name(tenant))
        return 0

    # ------------------------------------------------------------------ documents

    # Two objects per document, one per writer stream (see domain/indexing.py): the marker
    # (uuid document_uuid, latest_version) and the tombstone (uuid tombstone_uuid,
    # deleted_up_to_version). insert_many replaces a whole object, so one object with both
    # fields would let each writer overwrite the other's half with what it read earlier.

    async def get_document(self, tenant: str, document_id: str) -> DocumentState | None:
        handles = await self._read(tenant)
        if handles is None:
            return None
        _, documents = handles
        marker_id, tombstone_id = schema.document_uuid(document_id), schema.tombstone_uuid(
            document_id
        )
        res = await documents.query.fetch_objects_by_ids([marker_id, tombstone_id], limit=2)
        if not res.objects:
            return None
        latest = deleted = 0
        for obj in res.objects:
            p = obj.properties
            # State written before the split kept both fields on the marker: the tombstone
            # is the larger of the two (the old field is never written again).
            deleted = max(deleted, int(p.get(schema.DELETED_UP_TO_VERSION) or 0))
            if obj.uuid == marker_id:
                latest = int(p.get(schema.LATEST_VERSION) or 0)
        return DocumentState(document_id, latest_version=latest, deleted_up_to_version=deleted)

    async def put_latest_version(self, tenant: str, document_id: str, version: int) -> None:
        obj = DataObject(
            uuid=schema.document_uuid(document_id),
            properties={schema.DOCUMENT_ID: document_id, schema.LATEST_VERSION: version},
        )
        await self._put_state(tenant, obj, "document marker")

    async def put_deleted_up_to(self, tenant: str, document_id: str, version: int) -> None:
        obj = DataObject(
            uuid=schema.tombstone_uuid(document_id),
            properties={schema.DOCUMENT_ID: document_id, schema.DELETED_UP_TO_VERSION: version},
        )
        await self._put_state(tenant, obj, "document tombstone")

    async def _put_state(self, tenant: str, obj: DataObject[Any, Any], what: str) -> None:
        _, documents = await self._write(tenant)
        _raise_on_errors(await documents.data.insert_many([obj]), what)

    # ------------------------------------------------------------------ chunks

    async def upsert_chunks(self, tenant: str, chunks: Sequence[ChunkRecord]) -> None:
        if not chunks:
            return
        col, _ = await self._write(tenant)
        # insert_many goes through Weaviate's batch API, which replaces an object that already
        # has the uuid: a redelivered batch leaves exactly one copy of each chunk.
        objects = [
            DataObject(
                uuid=schema.chunk_uuid(c.chunk_id),
                vector=list(c.vector),
                properties={
                    schema.TEXT: c.text,
                    schema.CHUNK_ID: c.chunk_id,
                    schema.DOCUMENT_ID: c.document_id,
                    schema.DOCUMENT_VERSION: c.document_version,
                    schema.CHUNK_INDEX: c.chunk_index,
                    schema.TITLE: c.title,
                    schema.SOURCE: c.source,
                    schema.METADATA_JSON: json.dumps(dict(c.metadata), ensure_ascii=False),
                    schema.META_KV: [f"{k}={v}" for k, v in sorted(c.metadata.items())],
                    schema.EMBEDDING_MODEL: c.model,
                },
            )
            for c in chunks
        ]
        _raise_on_errors(await col.data.insert_many(objects), "chunks")

    async def delete_chunks(self, tenant: str, document_id: str, max_version: int | None) -> int:
        col, _ = await self._write(tenant)
        where = Filter.by_property(schema.DOCUMENT_ID).equal(document_id)
        if max_version is not None:
            where = where & Filter.by_property(schema.DOCUMENT_VERSION).less_or_equal(max_version)
        deleted = 0
        for _ in range(_MAX_DELETE_ROUNDS):
            result = await col.data.delete_many(where=where)
            if result.failed:
                raise RuntimeError(
                    f"Weaviate failed to delete {result.failed} chunks of {document_id}"
                )
            deleted += result.successful
            if not result.matches:
                break
        return deleted

    async def get_chunks(self, tenant: str, chunk_ids: Sequence[str]) -> list[Hit]:
        handles = await self._read(tenant)
        if handles is None:
            return []
        col, _ = handles
        uuids = [schema.chunk_uuid(c) for c in chunk_ids]
        res = await col.query.fetch_objects_by_ids(
            uuids, limit=len(uuids), return_properties=schema.CHUNK_PROPERTIES
        )
        by_id = {_hit(o, 0.0).chunk_id: _hit(o, 0.0) for o in res.objects}
        return [by_id[c] for c in chunk_ids if c in by_id]

    # ------------------------------------------------------------------ search

    async def search(self, tenant: str, query: StoreQuery) -> list[Hit]:
        handles = await self._read(tenant)
        if handles is None:
            return []
        col, _ = handles
        where = _filters(query.filters)
        if query.mode is SearchMode.VECTOR:
            assert query.vector is not None
            res = await col.query.near_vector(
                list(query.vector), limit=query.limit, filters=where,
                return_metadata=MetadataQuery(distance=True),
                return_properties=schema.CHUNK_PROPERTIES,
            )
            # Cosine distance is 1 - cosine similarity: report the similarity.
            return [_hit(o, 1.0 - (o.metadata.distance or 0.0),
                         1.0 - (o.metadata.distance or 0.0)) for o in res.objects]
        if query.mode is SearchMode.HYBRID:
            assert query.vector is not None
            # The vectors come back so each hit gets its cosine to the query: the fused score
            # is relative to the result set and says nothing about how close the best hit is.
            res = await col.query.hybrid(
                query.bm25_text, vector=list(query.vector), alpha=query.alpha,
                fusion_type=_FUSION[query.fusion],
                query_properties=[schema.TEXT], limit=query.limit, filters=where,
                return_metadata=MetadataQuery(score=True), include_vector=True,
                return_properties=schema.CHUNK_PROPERTIES,
            )
            return [_hit(o, o.metadata.score or 0.0, _similarity(o, query.vector))
                    for o in res.objects]
        res = await col.query.bm25(
            query.text, query_properties=[schema.TEXT], limit=query.limit, filters=where,
            return_metadata=MetadataQuery(score=True),
            return_properties=schema.CHUNK_PROPERTIES,
        )
        return [_hit(o, o.metadata.score or 0.0) for o in res.objects]

    async def tenant_names(self) -> list[str]:
        """The Weaviate tenants of the chunk collection (a store call takes them as tenants:
        tenant_name() leaves a valid name as it is)."""
        return sorted(await self._chunks.tenants.get())

    async def iterate_chunks(self, tenant: str, page_size: int) -> AsyncIterator[list[ChunkRecord]]:
        """The tenant's chunks in uuid order, page by page, without vectors."""
        handles = await self._read(tenant)
        if handles is None:
            return
        col, _ = handles
        after: uuid.UUID | None = None
        while True:
            res = await col.query.fetch_objects(
                limit=page_size, after=after, return_properties=schema.CHUNK_PROPERTIES
            )
            if not res.objects:
                return
            yield [_record(o) for o in res.objects]
            after = res.objects[-1].uuid

    async def stats(self, tenant: str) -> StoreStats:
        handles = await self._read(tenant)
        if handles is None:
            return StoreStats(0, 0, self.chunks_name)
        col, _ = handles
        chunks = await col.aggregate.over_all(total_count=True)
        # A document counts while it has chunks: the marker alone cannot say whether a
        # delete (a separate object) has since covered it.
        groups = await col.aggregate.over_all(
            group_by=GroupByAggregate(prop=schema.DOCUMENT_ID, limit=_MAX_GROUPS),
            total_count=True,
        )
        return StoreStats(chunks.total_count or 0, len(groups.groups), self.chunks_name)


def _filters(filters: Sequence[FieldFilter]) -> _Filters | None:
    parts: list[_Filters] = []
    for f in filters:
        if f.key in FIELD_KEYS:
            parts.append(Filter.by_property(f.key).equal(f.equals))
        else:
            parts.append(Filter.by_property(schema.META_KV).contains_any([f"{f.key}={f.equals}"]))
    return Filter.all_of(parts) if parts else None


_FUSION = {Fusion.RELATIVE_SCORE: HybridFusion.RELATIVE_SCORE, Fusion.RANKED: HybridFusion.RANKED}


def _similarity(obj: Object[Any, Any], query: Sequence[float]) -> float | None:
    """The object's cosine to the query vector (its only vector, or the default one)."""
    vectors: Any = obj.vector
    if isinstance(vectors, dict):
        vectors = vectors.get("default") or next(iter(vectors.values()), None)
    return cosine(vectors, query) if vectors else None


def _hit(obj: Object[Any, Any], score: float, similarity: float | None = None) -> Hit:
    p = obj.properties
    raw = p.get(schema.METADATA_JSON) or "{}"
    try:
        metadata = {str(k): str(v) for k, v in json.loads(raw).items()}
    except (ValueError, AttributeError):
        metadata = {}
    return Hit(
        chunk_id=str(p.get(schema.CHUNK_ID) or obj.uuid),
        document_id=str(p.get(schema.DOCUMENT_ID) or ""),
        document_version=int(p.get(schema.DOCUMENT_VERSION) or 0),
        chunk_index=int(p.get(schema.CHUNK_INDEX) or 0),
        text=str(p.get(schema.TEXT) or ""),
        score=float(score),
        title=str(p.get(schema.TITLE) or ""),
        source=str(p.get(schema.SOURCE) or ""),
        metadata=metadata,
        model=str(p.get(schema.EMBEDDING_MODEL) or ""),
        similarity=similarity,
    )


def _record(obj: Object[Any, Any]) -> ChunkRecord:
    hit = _hit(obj, 0.0)
    return ChunkRecord(
        chunk_id=hit.chunk_id, document_id=hit.document_id,
        document_version=hit.document_version, chunk_index=hit.chunk_index, text=hit.text,
        vector=(), title=hit.title, source=hit.source, metadata=hit.metadata, model=hit.model,
    )


def _raise_on_errors(result: Any, what: str) -> None:
    # insert_many reports per-object failures in .errors instead of raising; a partial write
    # must fail the batch so it is retried, never committed.
    if result.errors:
        first = next(iter(result.errors.values()))
        raise RuntimeError(
            f"Weaviate rejected {len(result.errors)} {what} objects: {first.message}"
        )
