"""`llmops ingest`: what is sent is relative to what the user named, never a local path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmops.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from llmops_cli.client import collect
from llmops_cli.testing import fake_service, run

pytestmark = pytest.mark.unit


class FakeIngestion(ingestion_pb2_grpc.IngestionServiceServicer):
    def __init__(self) -> None:
        self.documents: list[ingestion_pb2.Document] = []

    def SubmitDocuments(self, request: Any, context: Any) -> ingestion_pb2.SubmitDocumentsResponse:
        self.documents.extend(request.documents)
        return ingestion_pb2.SubmitDocumentsResponse(results=[
            ingestion_pb2.SubmitResult(document_id=d.document_id, version=1, chunk_count=1)
            for d in request.documents])


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "home" / "jane.doe" / "corpus"
    (root / "hr").mkdir(parents=True)
    (root / "a.md").write_text("# A\nalpha")
    (root / "hr" / "leave.txt").write_text("leave policy")
    (root / "skip.bin").write_bytes(b"\x00")
    return root


@pytest.fixture
def ingestion(monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = FakeIngestion()
    with fake_service(ingestion_pb2_grpc.add_IngestionServiceServicer_to_server, fake,
                      "LLMOPS_INGESTION_ADDR", monkeypatch):
        yield fake


def sent(fake: FakeIngestion) -> list[tuple[str, str]]:
    return sorted((d.document_id, d.source) for d in fake.documents)


def test_an_absolute_folder_is_recorded_relative_to_itself(
    ingestion: FakeIngestion, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["ingest", "--tenant", "acme", str(corpus)]) == 0
    assert sent(ingestion) == [("a.md", "corpus/a.md"), ("hr/leave.txt", "corpus/hr/leave.txt")]
    for d in ingestion.documents:
        assert str(corpus.parent) not in str(d) and "jane.doe" not in str(d)
    assert capsys.readouterr().out.splitlines() == ["a.md: v1 1 chunks", "hr/leave.txt: v1 1 chunks"]


def test_relative_dot_and_file_arguments(
    ingestion: FakeIngestion, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(corpus / "hr")
    assert run(["ingest", "--tenant", "acme", ".", "../a.md", str(corpus / "hr" / "leave.txt")]) == 0
    # "." is named after the folder it stands for; a file stands for itself.
    assert sent(ingestion) == [("a.md", "a.md"), ("leave.txt", "hr/leave.txt"),
                               ("leave.txt", "leave.txt")]


def test_collect_keeps_its_pairs_and_document_for_defaults_to_the_id(corpus: Path) -> None:
    from llmops_cli.client import document_for

    pairs = collect([str(corpus)])
    assert [d for _, d in pairs] == ["a.md", "hr/leave.txt"]
    assert document_for(*pairs[0]).source == "a.md"
