"""The model registry over gRPC: resolving base models and registering trained versions.

A job finishes long after the call that submitted it, so there is no caller's key to forward.
The trainer acts for the job's tenant with a key of its own: a `maintainer` key of that
tenant minted in the platform key store for this one call (expires in minutes, revoked right
after, visible in `llmops keys list`), or the configured `registry.api_key`. Keys are never
stored with the job nor logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import grpc

from llmops.registry.v1 import registry_pb2, registry_pb2_grpc
from llmops_kit.auth import Role
from llmops_kit.errors import NotFound, Unauthenticated
from llmops_kit.grpc_client import call_peer
from llmops_kit.keys import ApiKey, KeyStore, new_key
from llmops_trainer.ports import BaseModel, NewModelVersion

log = logging.getLogger(__name__)

KEY_TTL = timedelta(minutes=10)
# The registry sees a new key within its refresh interval (at most 2 s).
KEY_VISIBLE_SECONDS = 10.0


class KeyMinter:
    """Short-lived maintainer keys of a tenant for the trainer's own calls."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    def mint(self, tenant: str, purpose: str) -> tuple[str, str]:
        key_id, key, digest = new_key()
        at = datetime.now(UTC)
        self.store.create_key(ApiKey(key_id, tenant, Role.MAINTAINER, f"trainer: {purpose}",
                                     at, at + KEY_TTL, secret_hash=digest))
        return key_id, key

    def revoke(self, key_id: str) -> None:
        self.store.revoke_key(key_id, datetime.now(UTC))


class RegistryClient:
    def __init__(self, address: str, timeout: float, minter: KeyMinter | None,
                 api_key: str | None = None) -> None:
        if minter is None and not api_key:
            raise ValueError("registry: a key store to mint keys or registry.api_key is needed")
        self.address = address
        self.timeout = timeout
        self.minter = minter
        self.api_key = api_key
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> registry_pb2_grpc.ModelRegistryServiceStub:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address)
        return registry_pb2_grpc.ModelRegistryServiceStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _as_tenant(self, tenant: str, purpose: str,
                         call: Callable[[str], Awaitable[Any]]) -> Any:
        if self.api_key:
            return await call(self.api_key)
        assert self.minter is not None
        key_id, key = await asyncio.to_thread(self.minter.mint, tenant, purpose)
        try:
            deadline = asyncio.get_running_loop().time() + KEY_VISIBLE_SECONDS
            while True:
                try:
                    return await call(key)
                except Unauthenticated:
                    # The registry has not reloaded its keys yet.
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.5)
        finally:
            await asyncio.to_thread(self.minter.revoke, key_id)

    async def register(self, version: NewModelVersion) -> tuple[str, int]:
        request = registry_pb2.RegisterModelVersionRequest(
            name=version.name, artifact_uri=version.artifact_uri, base_model=version.base_model,
            format=version.format, metadata=version.metadata,
            lineage=registry_pb2.Lineage(parent_name=version.parent_name,
                                         parent_version=version.parent_version,
                                         training_job_id=version.job_id,
                                         dataset_uri=version.dataset_uri))

        async def call(key: str) -> registry_pb2.ModelVersion:
            return await call_peer(self._stub().RegisterModelVersion, request,
                                   peer=f"model registry at {self.address}",
                                   timeout=self.timeout, unavailable="REGISTRY_UNAVAILABLE",
                                   api_key=key)

        created = await self._as_tenant(version.tenant, f"register job {version.job_id}", call)
        log.info("registered %s@%d for job %s", created.name, created.version, version.job_id)
        return created.name, created.version

    async def get_version(self, tenant: str, name: str, number: int,
                          api_key: str | None) -> registry_pb2.ModelVersion | None:
        request = registry_pb2.GetModelVersionRequest(name=name, version=number)

        async def call(key: str) -> registry_pb2.ModelVersion:
            return await call_peer(self._stub().GetModelVersion, request,
                                   peer=f"model registry at {self.address}",
                                   timeout=self.timeout, unavailable="REGISTRY_UNAVAILABLE",
                                   api_key=key)

        try:
            if api_key:
                return await call(api_key)
            found: registry_pb2.ModelVersion = await self._as_tenant(
                tenant, f"resolve {name}@{number}", call)
            return found
        except NotFound:
            return None


class KnownBaseModels:
    """Base models: the shipped ones (name -> HF folder) and hf-format registry versions
    (`name@version` with a file:// artifact, e.g. an earlier full fine-tune)."""

    def __init__(self, shipped: dict[str, tuple[Path, int]], registry: RegistryClient | None,
                 caller_key: Callable[[], str | None] = lambda: None) -> None:
        self.shipped = shipped
        self.registry = registry
        self.caller_key = caller_key

    async def resolve(self, tenant: str, ref: str) -> BaseModel | None:
        name, _, number = ref.partition("@")
        if name in self.shipped:
            path, registry_version = self.shipped[name]
            if not number or int(number) == registry_version:
                return BaseModel(ref, path, name, registry_version)
        if not number or self.registry is None:
            return None
        found = await self.registry.get_version(tenant, name, int(number), self.caller_key())
        if found is None or found.format != "hf" or not found.artifact_uri.startswith("file://"):
            return None
        path = Path(unquote(urlparse(found.artifact_uri).path))
        return BaseModel(ref, path, name, int(number)) if path.is_dir() else None
