"""`llmops datasets` builds the right requests, against a fake DatasetService."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmops.trainer.v1 import datasets_pb2 as pb
from llmops.trainer.v1 import datasets_pb2_grpc
from llmops_cli.main import main
from llmops_cli.testing import fake_service, run

pytestmark = pytest.mark.unit


class FakeDatasets(datasets_pb2_grpc.DatasetServiceServicer):
    def __init__(self) -> None:
        self.requests: list[Any] = []

    def CreateDataset(self, request: Any, context: Any) -> pb.CreateDatasetResponse:
        self.requests.append(request)
        return pb.CreateDatasetResponse(created=True, dataset=pb.Dataset(
            id="ds-0123456789abcdef", name=request.name, kind=pb.DATASET_KIND_TEXT,
            manifest_json='{"id": "ds-0123456789abcdef"}',
            counts=pb.DatasetCounts(train=3, validation=1)))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    service = FakeDatasets()
    with fake_service(datasets_pb2_grpc.add_DatasetServiceServicer_to_server, service,
                      "LLMOPS_TRAINER_ADDR", monkeypatch):
        yield service


def test_from_documents_with_options(fake: FakeDatasets, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["datasets", "create", "--from-documents", "a.md", "b.md", "--name", "cpt",
                "--max-seq-len", "512", "--validation-fraction", "0", "--no-near-dedupe",
                "--tenant", "acme", "--json"]) == 0
    [req] = fake.requests
    assert req.WhichOneof("source") == "from_documents"
    assert list(req.from_documents.document_ids) == ["a.md", "b.md"]
    assert req.options.HasField("validation_fraction") and req.options.validation_fraction == 0
    assert (req.options.max_seq_len, req.options.disable_near_dedupe) == (512, True)
    assert not req.options.HasField("seed") and not req.options.HasField("near_duplicate_threshold")
    out = json.loads(capsys.readouterr().out)
    assert out["created"] and out["dataset"]["kind"] == "text"
    assert out["dataset"]["manifest"] == {"id": "ds-0123456789abcdef"}


def test_upload_sends_the_file_and_kind(fake: FakeDatasets, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "chat.jsonl"
    f.write_bytes(b'{"messages": []}\n')
    assert run(["datasets", "create", str(f), "--name", "c", "--kind", "chat", "--skip-invalid",
                "--seed", "3", "--tenant", "acme"]) == 0
    [req] = fake.requests
    assert (req.jsonl, req.kind, req.options.skip_invalid, req.options.seed) == (
        b'{"messages": []}\n', pb.DATASET_KIND_CHAT, True, 3)
    assert capsys.readouterr().out.startswith("created ds-0123456789abcdef  c (text): 3 train / 1 validation")
    with pytest.raises(SystemExit, match="give a FILE"):
        main(["datasets", "create", "--name", "x", "--tenant", "acme"])
