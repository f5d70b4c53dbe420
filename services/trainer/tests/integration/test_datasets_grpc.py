"""DatasetService on a real gRPC socket (the kit's GrpcServer and API-key auth), its catalogue
on SQLite and on Postgres, the files in a local artifact folder, the SmolLM2 tokenizer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from llmops.trainer.v1 import datasets_pb2 as pb
from llmops.trainer.v1 import datasets_pb2_grpc
from llmops_datasets import DatasetStore
from llmops_kit.auth import Principal, Role
from llmops_kit.db import make_engine
from llmops_kit.errors import NotFound
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.key_resolver import KeyResolver
from llmops_kit.testing import REPO, error_reason
from llmops_trainer.datasets import DatasetSettings, build_dataset_service, register
from llmops_trainer.datasets.sources import SourceDocument

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ACME = (("x-api-key", "k-acme"),)
GLOBEX = (("x-api-key", "k-globex"),)
KEYS = {"k-acme": Principal("acme", Role.MEMBER, "key-acme-1"),
        "k-globex": Principal("globex", Role.MEMBER, "key-globex-1")}
QUESTIONS = REPO / "samples" / "eval" / "questions.jsonl"
CHAT = [
    {"messages": [{"role": "user", "content": f"How many vacation days in year {i}?"},
                  {"role": "assistant", "content": f"Twenty-five days, as in {2000 + i}."}]}
    for i in range(12)
]


def jsonl(rows: Sequence[Any]) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


class FakeDocuments:
    """Stands in for ingestion + the vector store (GrpcDocumentSource has its own test)."""

    docs = {"handbook.md": "The office opens at eight. " * 60, "faq.txt": "Printers are on floor two."}

    async def fetch(self, tenant: str, document_ids: Sequence[str]) -> list[SourceDocument]:
        missing = [d for d in document_ids if d not in self.docs]
        if missing:
            raise NotFound("DOCUMENT_NOT_FOUND", f"no document {missing[0]}")
        return [SourceDocument(d, 1, self.docs[d]) for d in document_ids]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('datasets')}/trainer.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="module")
async def stub(database_url: str, tmp_path_factory: pytest.TempPathFactory
               ) -> AsyncIterator[datasets_pb2_grpc.DatasetServiceStub]:
    root = tmp_path_factory.mktemp("artifacts")
    engine = make_engine(database_url)
    settings = DatasetSettings(root=str(root), max_seq_len=256, validation_fraction=0.25,
                               max_errors=3)
    server = GrpcServer("127.0.0.1", 0, KeyResolver(None, KEYS))
    register(server, build_dataset_service(settings, engine, documents=FakeDocuments()))
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = datasets_pb2_grpc.DatasetServiceStub(channel)
    stub.root = root  # type: ignore[attr-defined]
    try:
        yield stub
    finally:
        await channel.close()
        await server.stop(0)
        # Postgres: the session's database is shared by the module's runs; start clean each time.
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE dataset_versions")
        engine.dispose()


async def fails(call: Any, code: grpc.StatusCode) -> tuple[str | None, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() is code, info.value.details()
    return error_reason(info.value), info.value.details() or ""


async def test_create_get_list_and_the_same_content_again(stub: Any) -> None:
    req = pb.CreateDatasetRequest(name="vacation-chat", jsonl=jsonl(CHAT))
    first = await stub.CreateDataset(req, metadata=ACME)
    ds = first.dataset
    assert first.created and ds.id.startswith("ds-") and ds.kind == pb.DATASET_KIND_CHAT
    assert (ds.tenant_id, ds.name, ds.created_by) == ("acme", "vacation-chat", "acme/key-acme-1")
    assert ds.counts.train + ds.counts.validation == 12 and ds.counts.validation >= 1
    assert ds.counts.input_lines == 12 and ds.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    # SmolLM2's tokens of the rendered chat (system prompt + two turns): about 50 each.
    assert 35 <= ds.token_stats.min <= ds.token_stats.p50 <= ds.token_stats.max <= 70
    assert ds.token_stats.max_seq_len == 256
    manifest = json.loads(ds.manifest_json)
    assert manifest["split"] == {"seed": 0, "validation_fraction": 0.25}
    folder = Path(stub.root) / "acme" / ds.id
    assert ds.uri == str(folder)
    version = DatasetStore(stub.root).get("acme", ds.id)  # what the trainer reads
    assert len(version.train_path.read_text().splitlines()) == ds.counts.train
    assert json.loads(version.validation_path.read_text().splitlines()[0])["messages"][0]["role"] \
        == "user"

    again = await stub.CreateDataset(pb.CreateDatasetRequest(name="renamed", jsonl=jsonl(CHAT)),
                                     metadata=ACME)
    assert not again.created and again.dataset.id == ds.id and again.dataset.name == "vacation-chat"
    got = await stub.GetDataset(pb.GetDatasetRequest(id=ds.id), metadata=ACME)
    assert got == ds
    listed = await stub.ListDatasets(pb.ListDatasetsRequest(), metadata=ACME)
    assert ds.id in [d.id for d in listed.datasets]
    assert (await stub.ListDatasets(pb.ListDatasetsRequest(kind=pb.DATASET_KIND_EVAL),
                                    metadata=ACME)).datasets == []
    # Another tenant sees none of it.
    assert (await stub.ListDatasets(pb.ListDatasetsRequest(), metadata=GLOBEX)).datasets == []
    reason, _ = await fails(stub.GetDataset(pb.GetDatasetRequest(id=ds.id), metadata=GLOBEX),
                            grpc.StatusCode.NOT_FOUND)
    assert reason == "DATASET_NOT_FOUND"


async def test_bad_lines_refuse_the_upload_with_the_first_errors(stub: Any) -> None:
    rows = [CHAT[0], "{oops", {"messages": [{"role": "user", "content": "q"},
                                            {"role": "wizard", "content": "a"}]},
            {"messages": [{"role": "user", "content": "q " * 400},
                          {"role": "assistant", "content": "a"}]},
            {"messages": []}, {"messages": []}]
    reason, details = await fails(stub.CreateDataset(pb.CreateDatasetRequest(
        name="bad", kind=pb.DATASET_KIND_CHAT, jsonl=jsonl(rows)), metadata=ACME),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert reason == "INVALID_RECORDS"
    lines = details.splitlines()
    assert lines[0] == "INVALID_RECORDS: 5 invalid line(s); the upload was refused (fix them or " \
                       "pass skip_invalid)"
    assert lines[1].startswith("line 2: INVALID_JSON: not valid JSON")
    assert lines[2] == ("line 3, field messages[1].role: UNKNOWN_ROLE: role must be one of "
                        "system, user, assistant")
    assert lines[3].startswith("line 4, field messages: TOO_LONG: ")
    assert "max_seq_len is 256" in lines[3]
    assert lines[4:] == ["... and 2 more"]  # max_errors=3
    assert (await stub.ListDatasets(pb.ListDatasetsRequest(), metadata=GLOBEX)).datasets == []

    skipped = await stub.CreateDataset(pb.CreateDatasetRequest(
        name="lenient", kind=pb.DATASET_KIND_CHAT, jsonl=jsonl(rows),
        options=pb.BuildOptions(skip_invalid=True, validation_fraction=0)), metadata=ACME)
    ds = skipped.dataset
    assert (ds.counts.train, ds.counts.validation, ds.counts.skipped) == (1, 0, 5)
    assert [(p.line, p.field, p.reason) for p in ds.skipped] == [
        (2, "", "INVALID_JSON"), (3, "messages[1].role", "UNKNOWN_ROLE"),
        (4, "messages", "TOO_LONG")]
    reason, _ = await fails(stub.CreateDataset(pb.CreateDatasetRequest(name="", jsonl=b"{}"),
                                               metadata=ACME), grpc.StatusCode.INVALID_ARGUMENT)
    assert reason == "BAD_NAME"
    reason, _ = await fails(stub.CreateDataset(pb.CreateDatasetRequest(
        name="x", jsonl=jsonl(CHAT), options=pb.BuildOptions(max_seq_len=4)), metadata=ACME),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert reason == "BAD_MAX_SEQ_LEN"


async def test_eval_set_and_documents(stub: Any) -> None:
    ev = (await stub.CreateDataset(pb.CreateDatasetRequest(
        name="eval", kind=pb.DATASET_KIND_EVAL, jsonl=QUESTIONS.read_bytes()), metadata=ACME)).dataset
    assert ev.kind == pb.DATASET_KIND_EVAL and ev.counts.records == 54 and ev.counts.train == 0
    records = DatasetStore(stub.root).get("acme", ev.id).records_path.read_text().splitlines()
    assert json.loads(records[0])["facts"] == ["25 days", "25"]

    docs = (await stub.CreateDataset(pb.CreateDatasetRequest(
        name="cpt", from_documents=pb.FromDocuments(document_ids=["handbook.md", "faq.txt"]),
        options=pb.BuildOptions(validation_fraction=0, disable_near_dedupe=True)),
        metadata=ACME)).dataset
    manifest = json.loads(docs.manifest_json)
    assert docs.kind == pb.DATASET_KIND_TEXT and manifest["source"] == {
        "type": "documents", "documents": [{"document_id": "handbook.md", "version": 1},
                                           {"document_id": "faq.txt", "version": 1}]}
    # The handbook (~420 tokens) is cut into windows of at most 256 tokens.
    assert docs.token_stats.over_length == 1 and docs.counts.train == 3
    assert docs.token_stats.max <= 256
    reason, _ = await fails(stub.CreateDataset(pb.CreateDatasetRequest(
        name="cpt", from_documents=pb.FromDocuments()), metadata=ACME),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert reason == "NO_DOCUMENTS"
    reason, _ = await fails(stub.CreateDataset(pb.CreateDatasetRequest(
        name="cpt", from_documents=pb.FromDocuments(document_ids=["nope.md"])), metadata=ACME),
        grpc.StatusCode.NOT_FOUND)
    assert reason == "DOCUMENT_NOT_FOUND"


async def test_a_call_without_a_key_is_refused(stub: Any) -> None:
    reason, _ = await fails(stub.ListDatasets(pb.ListDatasetsRequest()),
                            grpc.StatusCode.UNAUTHENTICATED)
    assert reason == "MISSING_API_KEY"


async def test_a_deleted_tenants_versions_are_removed(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    servicer = build_dataset_service(DatasetSettings(root=str(tmp_path / "a")), engine,
                                     documents=FakeDocuments())
    service = servicer.service
    from llmops_trainer.datasets.service import Options

    for tenant in ("acme", "globex"):
        await service.create_from_jsonl(tenant, "n", "chat", jsonl(CHAT), Options(), tenant)
    assert await service.delete_tenant("acme") == 1
    assert await service.list("acme", None, 10) == []
    assert not (tmp_path / "a" / "acme").exists()
    assert len(await service.list("globex", None, 10)) == 1
    engine.dispose()


async def test_each_new_version_is_announced_once(tmp_path: Path) -> None:
    from llmops_trainer.datasets import dataset_created_event
    from llmops_trainer.datasets.catalogue import Entry
    from llmops_trainer.datasets.service import Options

    seen: list[Entry] = []

    async def announce(entry: Entry) -> None:
        seen.append(entry)
        if entry.name == "fails":
            raise ConnectionError("bus down")

    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    service = build_dataset_service(DatasetSettings(root=str(tmp_path / "a")), engine,
                                    documents=FakeDocuments(), on_created=announce).service
    entry, created = await service.create_from_jsonl("acme", "n", "chat", jsonl(CHAT), Options(), "u")
    again, created_again = await service.create_from_jsonl("acme", "m", "chat", jsonl(CHAT),
                                                           Options(), "u")
    assert (created, created_again, again.id) == (True, False, entry.id)
    assert [e.id for e in seen] == [entry.id]
    # A failing announcement is logged; the version is created all the same.
    other, created = await service.create_from_jsonl("acme", "fails", "chat", jsonl(CHAT[:5]),
                                                     Options(), "u")
    assert created and len(seen) == 2 and (await service.get("acme", other.id)).name == "fails"

    event = dataset_created_event(entry)
    assert (event.envelope.tenant_id, event.envelope.producer) == ("acme", "trainer")
    assert event.envelope.event_id == dataset_created_event(entry).envelope.event_id  # stable
    assert event.envelope.event_id != dataset_created_event(other).envelope.event_id
    assert (event.dataset.id, event.dataset.counts.train + event.dataset.counts.validation) == (
        entry.id, 12)
    engine.dispose()
