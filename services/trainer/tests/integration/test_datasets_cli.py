"""`llmops datasets create|list|show` against the real DatasetService (kit GrpcServer on a real
socket, SQLite catalogue, SmolLM2 tokenizer), with --json and as text."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmops_cli.testing import run
from llmops_kit.auth import Principal, Role
from llmops_kit.db import make_engine
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.key_resolver import KeyResolver
from llmops_kit.testing import REPO
from llmops_trainer.datasets import DatasetSettings, build_dataset_service, register

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TRAIN = REPO / "samples" / "train" / "policies-qa.jsonl"
QUESTIONS = REPO / "samples" / "eval" / "questions.jsonl"


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The dataset service on its own event loop in a thread (the CLI runs its own loop)."""
    root = tmp_path_factory.mktemp("artifacts")
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('db')}/trainer.db")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[GrpcServer, int]:
        server = GrpcServer("127.0.0.1", 0, KeyResolver(None, {"k-acme": Principal("acme", Role.MEMBER)}))
        register(server, build_dataset_service(DatasetSettings(root=str(root)), engine))
        return server, await server.start()

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMOPS_TRAINER_ADDR", f"127.0.0.1:{port}")
        mp.setenv("LLMOPS_DEV_MODE", "true")
        mp.setenv("LLMOPS_API_KEYS", "k-acme=acme")
        mp.delenv("LLMOPS_API_KEY", raising=False)
        yield root
    asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    engine.dispose()


def out_json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def test_create_list_show_with_json(trainer: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["datasets", "create", str(TRAIN), "--name", "policies-qa", "--kind",
                "instruction", "--tenant", "acme", "--json"]) == 0
    created = out_json(capsys)
    ds = created["dataset"]
    assert created["created"] is True and ds["kind"] == "instruction"
    assert ds["id"] == "ds-e2dc91197f45c536"  # the id README.md shows (default settings)
    assert (ds["counts"]["train"], ds["counts"]["validation"]) == (122, 17)
    assert ds["manifest"]["pii"]["findings"] == {"pii.email": 1}
    assert ds["token_stats"]["max"] == 299 and ds["token_stats"]["p50"] == 62
    assert (trainer / "acme" / ds["id"] / "train.jsonl").is_file()

    assert run(["datasets", "create", str(TRAIN), "--name", "again", "--tenant", "acme"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"exists (same content): {ds['id']}  policies-qa (instruction): "
                           "122 train / 17 validation")
    assert "tokens: min 49, mean 86.1, p50 62, p95 169, max 299 (max_seq_len 2048" in text

    assert run(["datasets", "create", str(QUESTIONS), "--name", "policies-eval", "--kind", "eval",
                "--tenant", "acme", "--json"]) == 0
    ev = out_json(capsys)["dataset"]
    assert ev["kind"] == "eval" and ev["counts"]["records"] == 54

    assert run(["datasets", "list", "--tenant", "acme", "--json"]) == 0
    assert {d["id"]: d["name"] for d in out_json(capsys)["datasets"]} == {
        ds["id"]: "policies-qa", ev["id"]: "policies-eval"}
    assert run(["datasets", "list", "--kind", "eval", "--tenant", "acme"]) == 0
    [row] = capsys.readouterr().out.strip().splitlines()
    assert row.startswith(ev["id"]) and row.endswith("policies-eval")

    assert run(["datasets", "show", ds["id"], "--tenant", "acme", "--json"]) == 0
    shown = out_json(capsys)
    assert shown == ds


def test_bad_file_prints_the_errors(trainer: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "response": "a"}\n{"prompt": "q2"}\n')
    assert run(["datasets", "create", str(bad), "--name", "bad", "--tenant", "acme"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: INVALID_ARGUMENT: INVALID_RECORDS: 1 invalid line(s)")
    assert "line 2, field response: MISSING_FIELD: 'response' is required" in err
    assert run(["datasets", "create", str(bad), "--name", "ok", "--skip-invalid",
                "--tenant", "acme", "--json"]) == 0
    ds = out_json(capsys)["dataset"]
    assert ds["skipped"] == [{"line": 2, "field": "response", "reason": "MISSING_FIELD",
                              "message": "'response' is required"}]
    assert run(["datasets", "show", "ds-0000000000000000", "--tenant", "acme", "--json"]) == 1
    assert json.loads(capsys.readouterr().err)["error"] == "NOT_FOUND"
