"""Roles and tenant scopes of ModelRegistryService over a real gRPC socket (SQLite and Postgres,
real Kafka): who may write what, and that one tenant's moves never change what another is
served."""

from __future__ import annotations

import grpc
import pytest

from llmops.registry.v1 import registry_pb2 as pb
from llmops_kit import events
from llmops_kit.testing import error_reason

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ACME = (("x-api-key", "dev-key-acme"),)  # acme maintainer
GLOBEX = (("x-api-key", "dev-key-globex"),)  # globex maintainer
MEMBER = (("x-api-key", "dev-key-acme-member"),)  # acme member
ADMIN = (("x-api-key", "dev-key-admin"),)  # platform admin


async def denied(call: object) -> tuple[str | None, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED, info.value.details()
    return error_reason(info.value), info.value.details() or ""


def register(name: str, shared: bool = False) -> pb.RegisterModelVersionRequest:
    return pb.RegisterModelVersionRequest(name=name, artifact_uri=f"file:///models/{name}",
                                          format="hf", shared=shared)


async def test_a_member_reads_but_every_write_is_refused(running, unique) -> None:
    stub, name = running.stub, f"member-{unique}"
    base = await stub.GetModelVersion(pb.GetModelVersionRequest(
        name="smollm2-135m-instruct", alias="production"), metadata=MEMBER)
    assert base.version == 1
    rendered = await stub.RenderPrompt(pb.RenderPromptRequest(
        name="rag-answer", variables={"question": "q"}), metadata=MEMBER)
    assert rendered.version == 1
    reason, details = await denied(stub.SetAlias(pb.SetAliasRequest(
        name="smollm2-135m-instruct", alias="production", version=1), metadata=MEMBER))
    assert reason == "ROLE_REQUIRED"
    assert details == ("ROLE_REQUIRED: SetAlias needs the 'maintainer' role; "
                       "this key has 'member'")
    calls = [
        stub.RegisterModelVersion(register(name), metadata=MEMBER),
        stub.DeleteAlias(pb.DeleteAliasRequest(name="smollm2-135m-instruct",
                                               alias="production"), metadata=MEMBER),
        stub.CreatePromptVersion(pb.CreatePromptVersionRequest(name=name, template="x"),
                                 metadata=MEMBER),
        stub.SetPromptLabel(pb.SetPromptLabelRequest(name="rag-answer", label="production",
                                                     version=1), metadata=MEMBER),
    ]
    for call in calls:
        assert (await denied(call))[0] == "ROLE_REQUIRED"
    # Nothing was written, so nothing was audited.
    assert [e for e in running.registry.audit_log.entries if e.target.startswith(name)] == []


async def test_shared_writes_need_the_admin_role(running, unique) -> None:
    stub, name = running.stub, f"shared-{unique}"
    reason, details = await denied(stub.RegisterModelVersion(register(name, shared=True),
                                                             metadata=ACME))
    assert reason == "ROLE_REQUIRED"
    assert "RegisterModelVersion with shared=true needs the 'admin' role" in details
    v1 = await stub.RegisterModelVersion(register(name, shared=True), metadata=ADMIN)
    assert (v1.version, v1.tenant_id, v1.created_by) == (1, "", "platform")
    for call in (
        stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=1, shared=True),
                      metadata=ACME),
        stub.DeleteAlias(pb.DeleteAliasRequest(name=name, alias="production", shared=True),
                         metadata=GLOBEX),
        stub.CreatePromptVersion(pb.CreatePromptVersionRequest(name=name, template="x",
                                                               shared=True), metadata=ACME),
        stub.SetPromptLabel(pb.SetPromptLabelRequest(name="rag-answer", label="production",
                                                     version=1, shared=True), metadata=ACME),
    ):
        assert (await denied(call))[0] == "ROLE_REQUIRED"
    moved = await stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=1,
                                                   shared=True), metadata=ADMIN)
    assert moved.changed
    for md in (ACME, GLOBEX, MEMBER):
        got = await stub.GetModelVersion(pb.GetModelVersionRequest(name=name,
                                                                   alias="production"),
                                         metadata=md)
        assert got.version == 1


async def test_acme_moving_production_cannot_affect_globex(running, unique, kafka,
                                                           registry_kit) -> None:
    stub, name = running.stub, f"assistant-{unique}"
    for _ in range(2):
        await stub.RegisterModelVersion(register(name, shared=True), metadata=ADMIN)
    await stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=1,
                                           shared=True, reason="platform default"),
                        metadata=ADMIN)
    move = await stub.SetAlias(pb.SetAliasRequest(name=name, alias="production", version=2,
                                                  reason="acme canary"), metadata=ACME)
    assert (move.previous_version, move.version, move.changed) == (0, 2, True)

    async def serving(md: tuple) -> int:
        got = await stub.GetModelVersion(pb.GetModelVersionRequest(name=name,
                                                                   alias="production"),
                                         metadata=md)
        return got.version

    assert (await serving(ACME), await serving(MEMBER), await serving(GLOBEX)) == (2, 2, 1)
    globex_models = await stub.ListModels(pb.ListModelsRequest(), metadata=GLOBEX)
    assert {m.name: dict(m.aliases) for m in globex_models.models}[name] == {"production": 1}
    history = await stub.GetAliasHistory(pb.GetAliasHistoryRequest(name=name), metadata=GLOBEX)
    assert [(c.tenant_id, c.to_version) for c in history.changes] == [("", 1)]
    acme_history = await stub.GetAliasHistory(pb.GetAliasHistoryRequest(name=name),
                                              metadata=ACME)
    assert [(c.tenant_id, c.actor, c.to_version) for c in acme_history.changes] == \
        [("acme", "acme", 2), ("", "platform", 1)]
    # globex cannot touch acme's alias: DeleteAlias names its own scope, where there is none.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.DeleteAlias(pb.DeleteAliasRequest(name=name, alias="production"),
                               metadata=GLOBEX)
    assert error_reason(info.value) == "ALIAS_NOT_FOUND"
    assert await serving(ACME) == 2

    # The events say whose alias moved, so consumers invalidate only that tenant's resolutions.
    records = await registry_kit.read(kafka, running.topics.model_alias_changed.topic, 2,
                                      key=name)
    changed = [events.decode(events.MODEL_ALIAS_CHANGED, r.value) for r in records]
    assert [(e.change.tenant_id, e.change.to_version, e.envelope.tenant_id) for e in changed] == \
        [("", 1, "platform"), ("acme", 2, "acme")]

    # The audit log has both moves with their scope, actor and before/after.
    moves = [e for e in running.registry.audit_log.entries
             if e.action == "alias.set" and e.target == f"{name}@production"]
    assert [(e.tenant, e.actor_tenant, e.before, e.after) for e in moves] == [
        ("", "platform", None, {"version": 1}), ("acme", "acme", None, {"version": 2})]


async def test_a_tenant_prompt_version_is_served_to_that_tenant_only(running, unique) -> None:
    stub, name = running.stub, f"greet-{unique}"
    await stub.CreatePromptVersion(pb.CreatePromptVersionRequest(
        name=name, template="shared {{ who }}", labels=["production"], shared=True),
        metadata=ADMIN)
    own = await stub.CreatePromptVersion(pb.CreatePromptVersionRequest(
        name=name, template="acme {{ who }}", labels=["production"]), metadata=ACME)
    assert (own.version, own.tenant_id, sorted(own.labels)) == (2, "acme", ["latest", "production"])

    async def render(md: tuple) -> str:
        out = await stub.RenderPrompt(pb.RenderPromptRequest(name=name, variables={"who": "x"}),
                                      metadata=md)
        return out.text

    assert (await render(ACME), await render(MEMBER), await render(GLOBEX)) == \
        ("acme x", "acme x", "shared x")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetPromptVersion(pb.GetPromptVersionRequest(name=name, version=2),
                                    metadata=GLOBEX)
    assert error_reason(info.value) == "PROMPT_VERSION_NOT_FOUND"
    created = [e for e in running.registry.audit_log.entries if e.action == "prompt.create"
               and e.target == f"{name}/v2"]
    assert [(e.tenant, e.after) for e in created] == \
        [("acme", {"version": 2, "labels": ["latest", "production"]})]
