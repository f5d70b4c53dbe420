"""API keys as data across processes: the model-registry process (AdminService) and the safety
process share one platform database. Outside development mode, with a bootstrap admin key:
a key created through AdminService works in the safety service within seconds, stops working
within seconds of its revocation (both measured and printed), a member key is refused an
admin RPC, everything is audited, deleting the tenant publishes TenantDeleted; and a service
with no keys at all refuses to start.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmops.admin.v1 import admin_pb2, admin_pb2_grpc
from llmops.safety.v1 import safety_pb2, safety_pb2_grpc
from llmops_kit import events
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import error_reason, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
LIMIT_SECONDS = 5.0  # the resolver polls every second; allow for a loaded machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(tmp_path: Path, kafka: KafkaSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LLMOPS_") or k == "LLMOPS_HOME"}
    env.update({
        "LLMOPS_DEV_MODE": "false",
        "LLMOPS_AUTH_DATABASE_URL": f"sqlite:///{tmp_path}/platform.db",
        "LLMOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LLMOPS_LOG_LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1",
    })
    return env


@dataclass
class Proc:
    proc: asyncio.subprocess.Process
    address: str
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


async def spawn(module: str, env: dict[str, str], port_variable: str, log: Path) -> Proc:
    port = free_port()
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, env={**env, port_variable: str(port)},
            stdout=out, stderr=out)
    return Proc(proc, f"127.0.0.1:{port}", log)


async def wait_serving(p: Proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(p.address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        while True:
            assert p.proc.returncode is None, f"{p.log.name} exited:\n{p.tail()}"
            try:
                resp = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            assert time.monotonic() < deadline, f"{p.log.name} not serving:\n{p.tail()}"
            await asyncio.sleep(0.2)


async def stop(p: Proc) -> None:
    if p.proc.returncode is None:
        p.proc.terminate()
        try:
            await asyncio.wait_for(p.proc.wait(), 30)
        except TimeoutError:
            p.proc.kill()
            await p.proc.wait()


@dataclass
class Stack:
    admin: admin_pb2_grpc.AdminServiceStub
    safety: safety_pb2_grpc.SafetyServiceStub
    admin_md: tuple[tuple[str, str], ...]
    logs: list[Path]


@pytest.fixture
async def stack(kafka: KafkaSettings, tmp_path: Path) -> AsyncIterator[Stack]:
    admin_key = secrets.token_urlsafe(32)
    env = {**base_env(tmp_path, kafka), "LLMOPS_ADMIN_KEY": admin_key}
    registry = await spawn("llmops_registry", {
        **env, "LLMOPS_REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path}/registry.db",
        "LLMOPS_REGISTRY_SEED_MODEL__ENABLED": "false", "LLMOPS_REGISTRY_SEED_RAG_PROMPT": "false",
    }, "LLMOPS_REGISTRY_GRPC_PORT", tmp_path / "registry.log")
    safety = await spawn("llmops_safety", env, "LLMOPS_SAFETY_GRPC_PORT", tmp_path / "safety.log")
    try:
        await asyncio.gather(wait_serving(registry), wait_serving(safety))
        async with grpc.aio.insecure_channel(registry.address) as r, \
                grpc.aio.insecure_channel(safety.address) as s:
            yield Stack(admin_pb2_grpc.AdminServiceStub(r), safety_pb2_grpc.SafetyServiceStub(s),
                        (("x-api-key", admin_key),), [registry.log, safety.log])
    finally:
        await asyncio.gather(stop(registry), stop(safety))
    for log in (registry.log, safety.log):  # nothing ever logs a key
        assert admin_key not in log.read_text(errors="replace")


async def check(stack: Stack, key: str) -> grpc.StatusCode:
    try:
        await stack.safety.CheckText(safety_pb2.CheckTextRequest(
            text="hello", direction=safety_pb2.DIRECTION_INPUT),
                                     metadata=(("x-api-key", key),), timeout=5)
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        return exc.code()


async def seconds_until(stack: Stack, key: str, code: grpc.StatusCode) -> float:
    start = time.monotonic()
    while (got := await check(stack, key)) != code:
        elapsed = time.monotonic() - start
        assert elapsed < LIMIT_SECONDS, f"still {got.name} after {elapsed:.1f} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_keys_created_and_revoked_take_effect_everywhere_within_seconds(
        stack: Stack, kafka: KafkaSettings, unique: str) -> None:
    tenant = f"auth{unique}"
    await stack.admin.CreateTenant(admin_pb2.CreateTenantRequest(tenant_id=tenant),
                                   metadata=stack.admin_md)
    created = await stack.admin.CreateKey(admin_pb2.CreateKeyRequest(
        tenant_id=tenant, role=admin_pb2.ROLE_MEMBER, description="it"), metadata=stack.admin_md)
    key = created.secret
    works_after = await seconds_until(stack, key, grpc.StatusCode.OK)
    print(f"\nnew key accepted by another service after {works_after:.2f} s")

    member = (("x-api-key", key),)
    tenants = await stack.admin.ListTenants(admin_pb2.ListTenantsRequest(),
                                            metadata=stack.admin_md)
    assert tenant in [t.tenant_id for t in tenants.tenants]
    listed = await stack.admin.ListKeys(admin_pb2.ListKeysRequest(tenant_id=tenant),
                                        metadata=stack.admin_md)
    assert [(k.key_id, k.role, k.HasField("expires_at")) for k in listed.keys] == [
        (created.key.key_id, admin_pb2.ROLE_MEMBER, False)]
    assert key not in str(listed)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.admin.CreateTenant(admin_pb2.CreateTenantRequest(tenant_id="x"),
                                       metadata=member)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(err.value) == "ROLE_REQUIRED"
    assert "needs the 'admin' role" in (err.value.details() or "")

    await stack.admin.RevokeKey(admin_pb2.RevokeKeyRequest(key_id=created.key.key_id),
                                metadata=stack.admin_md)
    refused_after = await seconds_until(stack, key, grpc.StatusCode.UNAUTHENTICATED)
    print(f"revoked key refused by another service after {refused_after:.2f} s")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.safety.CheckText(safety_pb2.CheckTextRequest(text="x"), metadata=member)
    assert error_reason(err.value) == "INVALID_API_KEY" and key not in (err.value.details() or "")

    audit = await stack.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(tenant_id=tenant), metadata=stack.admin_md)
    assert [(e.action, e.actor, e.actor_tenant) for e in audit.entries] == [
        ("key.revoke", "bootstrap", "platform"), ("key.list", "bootstrap", "platform"),
        ("key.create", "bootstrap", "platform"), ("tenant.create", "bootstrap", "platform")]
    assert '"revoked_at": null' in audit.entries[0].before_json
    assert all(key not in e.after_json for e in audit.entries)

    deleted = await stack.admin.DeleteTenant(admin_pb2.DeleteTenantRequest(tenant_id=tenant),
                                             metadata=stack.admin_md)
    assert deleted.revoked_keys == 0  # its only key was revoked already
    records = await read_topic(kafka, events.TENANT_DELETED.topic, 1, timeout=30)
    ours = [r for r in records if r.key == tenant.encode()]
    assert ours, "no TenantDeleted for the tenant"
    event = events.decode(events.TENANT_DELETED, ours[-1].value)
    assert (event.tenant_id, event.envelope.tenant_id) == (tenant, tenant)


async def test_no_keys_and_no_development_mode_refuses_to_start(
        kafka: KafkaSettings, tmp_path: Path) -> None:
    p = await spawn("llmops_registry", {
        **base_env(tmp_path, kafka),
        "LLMOPS_REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path}/registry.db",
        "LLMOPS_REGISTRY_SEED_MODEL__ENABLED": "false", "LLMOPS_REGISTRY_SEED_RAG_PROMPT": "false",
    }, "LLMOPS_REGISTRY_GRPC_PORT", tmp_path / "refused.log")
    try:
        code = await asyncio.wait_for(p.proc.wait(), 120)
    finally:
        await stop(p)
    assert code == 2, p.tail()
    assert "refusing to start: no API keys are configured" in p.tail()
    assert "LLMOPS_ADMIN_KEY" in p.tail() and "LLMOPS_DEV_MODE=true" in p.tail()
