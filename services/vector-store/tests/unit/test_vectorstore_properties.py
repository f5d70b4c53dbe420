"""Property tests of the VectorStoreService request converters and the ChunkVectors event
converter: arbitrary requests give a response or INVALID_ARGUMENT with a reason, arbitrary
events are indexed or dead-lettered with a reason, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.embedding.v1 import events_pb2 as embedding_events
from llmops.vectorstore.v1 import vectorstore_pb2 as pb
from llmops_kit.errors import DomainError
from llmops_kit.proto_strategies import assert_client_error, messages, rpc_outcome
from llmops_vectorstore.api.events import IndexingHandlers
from llmops_vectorstore.api.grpc import VectorStoreServicer
from llmops_vectorstore.domain.indexing import Indexer
from llmops_vectorstore.domain.search import SearchService

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=1000,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def servicer(store, embedder) -> VectorStoreServicer:
    return VectorStoreServicer(SearchService(store, embedder, 4))


@PROPERTY
@given(request=messages(pb.SearchRequest))
def test_search_requests(servicer: VectorStoreServicer, request: pb.SearchRequest) -> None:
    result = rpc_outcome(servicer.Search(request, None))
    assert_client_error(result)
    if not isinstance(result, DomainError):
        assert isinstance(result, pb.SearchResponse) and list(result.hits) == []


@PROPERTY
@given(request=messages(pb.GetChunksRequest))
def test_get_chunks_requests(servicer: VectorStoreServicer, request: pb.GetChunksRequest) -> None:
    result = rpc_outcome(servicer.GetChunks(request, None))
    assert_client_error(result)
    if not isinstance(result, DomainError):
        assert list(result.chunks) == []


@PROPERTY
@given(request=messages(pb.StatsRequest))
def test_stats_requests(servicer: VectorStoreServicer, request: pb.StatsRequest) -> None:
    result = rpc_outcome(servicer.Stats(request, None))
    assert not isinstance(result, DomainError) and result.chunk_count == 0


def decodable(event: embedding_events.ChunkVectors, tenant: str) -> None:
    """What the kit's decoder guarantees before a handler sees the event."""
    event.envelope.event_id = event.envelope.event_id or "e-1"
    event.envelope.tenant_id = tenant
    event.envelope.schema_version = 1


@PROPERTY
@given(event=messages(embedding_events.ChunkVectors, depth=4),
       tenant=st.sampled_from(["acme", "globex"]))
def test_chunk_vectors_events_index_or_dead_letter(store, bus, batch_of,
                                                  event: embedding_events.ChunkVectors,
                                                  tenant: str) -> None:
    decodable(event, tenant)
    handlers = IndexingHandlers(Indexer(store), bus, 4)
    before = (len(bus.dead), len(bus.published))
    outcome = rpc_outcome(handlers.on_vectors(batch_of([event])))
    assert not isinstance(outcome, DomainError)
    dead, published = len(bus.dead) - before[0], len(bus.published) - before[1]
    assert (dead, published) in {(1, 0), (0, 1)}
    if dead:
        assert bus.dead[-1][1].isupper()
