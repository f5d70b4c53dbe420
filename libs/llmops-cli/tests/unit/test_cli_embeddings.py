"""`llmops embeddings status|switch` against a fake vector-store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_cli.testing import fake_service, run

pytestmark = pytest.mark.unit

MINILM = vectorstore_pb2.EmbeddingCollection(
    model="sentence-transformers/all-MiniLM-L6-v2", dimensions=384, collection="LlmopsChunk",
    tokenization="word")
MUSE = vectorstore_pb2.EmbeddingCollection(
    model="google/universal-sentence-encoder-multilingual-3", dimensions=512,
    collection="LlmopsChunk_google_universal_sentence_encoder_multilingual_3",
    tokenization="kagome_kr")


class FakeVectorStore(vectorstore_pb2_grpc.VectorStoreServiceServicer):
    """Building for two status calls after the switch, then switched."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.polls = 0

    def SwitchEmbeddingModel(self, request: Any, context: Any) -> Any:
        self.requests.append((request.model, dict(context.invocation_metadata())))
        return vectorstore_pb2.EmbeddingStatus(active=MINILM, target=MUSE, phase="building",
                                               tenants_total=2)

    def GetEmbeddingStatus(self, request: Any, context: Any) -> Any:
        self.polls += 1
        if not self.requests or self.polls < 3:
            return vectorstore_pb2.EmbeddingStatus(
                active=MINILM, target=MUSE, phase="building", tenants_total=2,
                tenants_done=min(self.polls, 1), chunks_copied=40 * min(self.polls, 1))
        return vectorstore_pb2.EmbeddingStatus(active=MUSE, phase="idle", tenants_total=2,
                                               tenants_done=2, chunks_copied=80,
                                               previous_model=MINILM.model)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = FakeVectorStore()
    with fake_service(vectorstore_pb2_grpc.add_VectorStoreServiceServicer_to_server, fake,
                      "LLMOPS_VECTORSTORE_ADDR", monkeypatch):
        yield fake


def test_status_shows_the_active_model_and_the_progress(store, capsys) -> None:
    assert run(["embeddings", "status"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "active: sentence-transformers/all-MiniLM-L6-v2 (384 dims, collection LlmopsChunk, "
        "tokenization word)",
        "building: google/universal-sentence-encoder-multilingual-3 (512 dims, collection "
        "LlmopsChunk_google_universal_sentence_encoder_multilingual_3, tokenization "
        "kagome_kr): 1/2 tenants, 40 chunks re-embedded",
    ]


def test_switch_waits_until_searches_use_the_new_model(store, capsys) -> None:
    assert run(["embeddings", "switch", "muse", "--wait", "--poll", "0.01", "--json"]) == 0
    [(model, md)] = store.requests
    assert model == "muse" and md["x-api-key"] == "dev-admin-key"
    out = json.loads(capsys.readouterr().out)
    assert (out["phase"], out["active"]["model"], out["chunks_copied"], out["previous_model"]) == (
        "idle", MUSE.model, "80", MINILM.model)


def test_switch_without_wait_returns_at_once(store, capsys) -> None:
    assert run(["embeddings", "switch", "muse", "--api-key", "admin-secret"]) == 0
    assert store.requests[0][1]["x-api-key"] == "admin-secret" and store.polls == 0
    assert "building: google/universal-sentence-encoder-multilingual-3" in capsys.readouterr().out
