"""Keys are data: one created through AdminService works in every running service within
seconds, and is refused by every service within seconds of its revocation, no restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from e2e_support import RUN_ID, Stack
from llmops.admin.v1 import admin_pb2, admin_pb2_grpc
from llmops.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from llmops.registry.v1 import registry_pb2, registry_pb2_grpc
from llmops.safety.v1 import safety_pb2, safety_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_kit.testing import error_reason

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

Probe = Callable[[grpc.aio.Channel, tuple], Awaitable[Any]]

# One cheap call per service, made with the key under test. Any answer but UNAUTHENTICATED
# (NOT_FOUND, INVALID_ARGUMENT...) means the key got through authentication.
PROBES: dict[str, Probe] = {
    "ingestion": lambda ch, md: ingestion_pb2_grpc.IngestionServiceStub(ch).GetDocumentStatus(
        ingestion_pb2.GetDocumentStatusRequest(document_id="probe"), metadata=md, timeout=5),
    "embedding": lambda ch, md: embedding_pb2_grpc.EmbeddingServiceStub(ch).GetModelInfo(
        embedding_pb2.GetModelInfoRequest(), metadata=md, timeout=5),
    "vector-store": lambda ch, md: vectorstore_pb2_grpc.VectorStoreServiceStub(ch).Stats(
        vectorstore_pb2.StatsRequest(), metadata=md, timeout=5),
    "safety": lambda ch, md: safety_pb2_grpc.SafetyServiceStub(ch).GetInfo(
        safety_pb2.GetInfoRequest(), metadata=md, timeout=5),
    "model-registry": lambda ch, md: registry_pb2_grpc.ModelRegistryServiceStub(ch).ListModels(
        registry_pb2.ListModelsRequest(), metadata=md, timeout=5),
    "inference": lambda ch, md: inference_pb2_grpc.InferenceServiceStub(ch).Generate(
        inference_pb2.GenerateRequest(), metadata=md, timeout=5),
}


async def accepted(probe: Probe, ch: grpc.aio.Channel, md: tuple) -> bool:
    try:
        await probe(ch, md)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            assert md[0][1] not in (exc.details() or ""), "the error echoes the key"
            return False
    return True


async def seconds_until(want: bool, probe: Probe, ch: grpc.aio.Channel, md: tuple,
                        limit: float = 20) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if await accepted(probe, ch, md) is want:
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise AssertionError(f"key still {'refused' if want else 'accepted'} after {limit} s")


async def test_created_and_revoked_keys_take_effect_in_every_service(answer_stack: Stack) -> None:
    admin_md = (("x-api-key", answer_stack.env["LLMOPS_ADMIN_KEY"]),)
    ports = {name: answer_stack.spec(name).port for name in PROBES}
    channels = {name: grpc.aio.insecure_channel(f"127.0.0.1:{p}") for name, p in ports.items()}
    tenant = f"keys{RUN_ID}"
    try:
        admin = admin_pb2_grpc.AdminServiceStub(channels["model-registry"])
        await admin.CreateTenant(admin_pb2.CreateTenantRequest(tenant_id=tenant),
                                 metadata=admin_md, timeout=10)
        created = await admin.CreateKey(
            admin_pb2.CreateKeyRequest(tenant_id=tenant, role=admin_pb2.ROLE_MEMBER,
                                       description="revocation timing"),
            metadata=admin_md, timeout=10)
        md = (("x-api-key", created.secret),)
        assert created.key.key_id and created.key.key_id != created.secret
        to_accept = {name: await seconds_until(True, probe, channels[name], md)
                     for name, probe in PROBES.items()}

        # A member may not administer: PERMISSION_DENIED with the reason.
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await admin.ListTenants(admin_pb2.ListTenantsRequest(), metadata=md, timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(denied.value) == "ROLE_REQUIRED"

        await admin.RevokeKey(admin_pb2.RevokeKeyRequest(key_id=created.key.key_id),
                              metadata=admin_md, timeout=10)
        revoked_at = time.monotonic()
        waits = await asyncio.gather(*(seconds_until(False, probe, channels[name], md)
                                       for name, probe in PROBES.items()))
        to_refuse = {name: round(w, 2) for name, w in zip(PROBES, waits, strict=True)}
        assert time.monotonic() - revoked_at < 25
        print("\nseconds from CreateKey to first acceptance:",
              {k: round(v, 2) for k, v in to_accept.items()})
        print("seconds from RevokeKey to refusal:", to_refuse)
        assert max(to_refuse.values()) < 10
        audit = await admin.ListAuditEntries(
            admin_pb2.ListAuditEntriesRequest(tenant_id=tenant), metadata=admin_md, timeout=10)
        actions = [e.action for e in audit.entries]
        assert any("revoke" in a for a in actions) and any("create" in a for a in actions)
        assert all(created.secret not in (e.before_json + e.after_json) for e in audit.entries)
    finally:
        for ch in channels.values():
            await ch.close()
