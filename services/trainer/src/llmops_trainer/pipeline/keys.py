"""Keys for continuous training's calls to inference and the registry.

Nobody is on the line when a loop evaluates a candidate or starts its canary, so the trainer
acts for the loop's tenant as adapters/registry.py does for registrations: a `maintainer` key
of that tenant minted in the platform key store (KeyMinter: expires in 10 minutes, labelled
`trainer: <purpose>`, visible in `llmops keys list`) held for one step (one evaluation run,
one canary call) and revoked right after, or the configured `registry.api_key` for a
single-tenant deployment. Keys are never stored with the loop nor logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from llmops_kit.errors import Unauthenticated
from llmops_trainer.adapters.registry import KEY_VISIBLE_SECONDS, KeyMinter

T = TypeVar("T")


class TenantKeys:
    def __init__(self, minter: KeyMinter | None, api_key: str | None = None,
                 visible_seconds: float = KEY_VISIBLE_SECONDS) -> None:
        if minter is None and not api_key:
            raise ValueError("continuous training: a key store to mint keys or "
                             "registry.api_key is needed")
        self.minter = minter
        self.api_key = api_key
        self.visible_seconds = visible_seconds

    @asynccontextmanager
    async def key(self, tenant: str, purpose: str) -> AsyncIterator[str]:
        if self.api_key:
            yield self.api_key
            return
        assert self.minter is not None
        key_id, key = await asyncio.to_thread(self.minter.mint, tenant, purpose)
        try:
            yield key
        finally:
            await asyncio.to_thread(self.minter.revoke, key_id)

    async def first_call(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, again while the peer has not loaded a just-minted key yet (services
        refresh their keys every few seconds)."""
        deadline = asyncio.get_running_loop().time() + self.visible_seconds
        while True:
            try:
                return await call()
            except Unauthenticated:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)
