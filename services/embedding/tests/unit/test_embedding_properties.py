"""Property tests of the EmbeddingService request converters (Embed, GetModelInfo) and the
ChunksCreated event converter, with a fake model: arbitrary requests give a response or
INVALID_ARGUMENT with a reason, arbitrary events are embedded or dead-lettered with a reason,
never another exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.embedding.v1 import embedding_pb2 as pb
from llmops.ingestion.v1 import events_pb2 as ingestion_events
from llmops_embedding.api.events import EmbeddingHandlers
from llmops_embedding.api.grpc import EmbeddingServicer
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_kit.errors import DomainError
from llmops_kit.proto_strategies import assert_client_error, messages, request_types, rpc_outcome

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=2000,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
RPCS = request_types(pb.DESCRIPTOR.services_by_name["EmbeddingService"])


@pytest.mark.parametrize(("method", "request_type"), RPCS, ids=[name for name, _ in RPCS])
@PROPERTY
@given(data=st.data())
def test_arbitrary_requests(embedder, method: str, request_type: type,
                            data: st.DataObject) -> None:
    request = data.draw(messages(request_type))
    result = rpc_outcome(getattr(EmbeddingServicer(EmbeddingService(embedder)), method)(
        request, None))
    assert_client_error(result)
    if method == "Embed" and not isinstance(result, DomainError):
        assert len(result.vectors) == len(request.texts) and result.dimensions == 3


@PROPERTY
@given(event=messages(ingestion_events.ChunksCreated, depth=4))
def test_chunks_created_events_embed_or_dead_letter(embedder, bus, batch_of,
                                                   event: ingestion_events.ChunksCreated) -> None:
    event.envelope.event_id, event.envelope.tenant_id = "e-1", "acme"  # as the decoder ensures
    before = (len(bus.dead), len(bus.published))
    outcome = rpc_outcome(EmbeddingHandlers(EmbeddingService(embedder), bus).on_chunks_created(
        batch_of([event])))
    assert not isinstance(outcome, DomainError)
    dead, published = len(bus.dead) - before[0], len(bus.published) - before[1]
    assert (dead, published) in {(1, 0), (0, 1)}
    if dead:
        assert bus.dead[-1][1].isupper()
    else:
        vectors = bus.published[-1][2]
        assert len(vectors.chunks) == len(event.chunks)
