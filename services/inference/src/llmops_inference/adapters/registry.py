"""Model versions and prompts from the model-registry service.

Calls carry the caller's API key, so the registry resolves `model@alias` and `prompt@label` for
the caller's tenant (its own alias/label if it has one, else the shared one). Alias resolutions
are cached per (tenant, alias); a ModelAliasChanged event (api/events.py) invalidates the
entries of the tenant whose alias moved (every tenant's for a shared alias), so promoting a new
version switches the model without restarting anything, and only for whom it was promoted. The
TTL bounds how stale a resolution can get if an event is missed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import grpc

from llmops.registry.v1 import registry_pb2, registry_pb2_grpc
from llmops_inference.domain.model import ModelRef, Passage, RenderedPrompt
from llmops_kit.context import current_tenant
from llmops_kit.errors import FailedPrecondition
from llmops_kit.grpc_client import call_peer

FULL_MODEL_SCHEMES = ("file://", "pkg://")


def model_ref(mv: registry_pb2.ModelVersion) -> ModelRef:
    """How the generation backend addresses a version.

    A `peft-lora` version is a TGI adapter (`adapter_id` metadata, else `<name>-v<version>`)
    that may be loaded on demand from its artifact. An `hf` version with a file:// or pkg://
    artifact and no `adapter_id` is a full model loaded on demand (the generation server's
    POST /admin/models) as `<name>-v<version>`. Any other version is the server's base model,
    unless its `adapter_id` metadata names a model the server already serves (a full model
    loaded at its start, or a TGI LORA_ADAPTERS id).
    """
    lora = mv.format == "peft-lora"
    full = (mv.format == "hf" and not mv.metadata.get("adapter_id")
            and mv.artifact_uri.startswith(FULL_MODEL_SCHEMES))
    adapter = mv.metadata.get("adapter_id") or (
        f"{mv.name}-v{mv.version}" if lora or full else None)
    return ModelRef(mv.name, mv.version, adapter, mv.artifact_uri if lora or full else "",
                    full_model=full)


class RegistryClient:
    def __init__(self, address: str, timeout_seconds: float, model_name: str,
                 ttl_seconds: float = 30.0) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = registry_pb2_grpc.ModelRegistryServiceStub(self.channel)
        self.timeout = timeout_seconds
        self.model_name = model_name
        self.ttl = ttl_seconds
        self._models: dict[tuple[str, str], tuple[float, ModelRef]] = {}

    async def resolve(self, alias: str) -> ModelRef:
        key = (current_tenant() or "", alias)
        cached = self._models.get(key)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        mv = await call_peer(
            self.stub.GetModelVersion,
            registry_pb2.GetModelVersionRequest(name=self.model_name, alias=alias),
            peer=f"registry (model {self.model_name}@{alias})", timeout=self.timeout,
            unavailable="REGISTRY_UNAVAILABLE")
        ref = model_ref(mv)
        self._models[key] = (time.monotonic(), ref)
        return ref

    async def resolve_version(self, version: int) -> ModelRef:
        """A pinned version; cached like aliases (a version never changes, but the tenant's
        access to it may, e.g. a deleted tenant: the TTL bounds that)."""
        key = (current_tenant() or "", f"#{version}")
        cached = self._models.get(key)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        mv = await call_peer(
            self.stub.GetModelVersion,
            registry_pb2.GetModelVersionRequest(name=self.model_name, version=version),
            peer=f"registry (model {self.model_name} v{version})", timeout=self.timeout,
            unavailable="REGISTRY_UNAVAILABLE")
        ref = model_ref(mv)
        self._models[key] = (time.monotonic(), ref)
        return ref

    def invalidate(self, model_name: str | None = None, tenant: str | None = None) -> None:
        """Forgets resolutions of `model_name` (None: any) for `tenant` (None: every tenant)."""
        if model_name is not None and model_name != self.model_name:
            return
        if tenant is None:
            self._models.clear()
        else:
            for key in [k for k in self._models if k[0] == tenant]:
                del self._models[key]

    async def render(self, name: str, label: str, question: str, passages: Sequence[Passage]
                     ) -> RenderedPrompt:
        req = registry_pb2.RenderPromptRequest(
            name=name, label=label, variables={"question": question},
            documents=[registry_pb2.PromptDocument(id=str(p.marker), text=p.text, title=p.title,
                                                   source=p.document_id, score=p.score)
                       for p in passages])
        resp = await call_peer(self.stub.RenderPrompt, req,
                               peer=f"registry (prompt {name}@{label})", timeout=self.timeout,
                               unavailable="REGISTRY_UNAVAILABLE")
        if not resp.text.strip():
            raise FailedPrecondition("EMPTY_PROMPT", f"prompt {name}@{label} rendered empty")
        return RenderedPrompt(resp.name or name, resp.version, "", resp.text)

    async def close(self) -> None:
        await self.channel.close()
