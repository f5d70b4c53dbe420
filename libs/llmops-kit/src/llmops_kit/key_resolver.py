"""Who holds a key: a cached view of the key store, refreshed every ≤2 s, shared by every RPC.

Each service keeps the non-revoked keys in memory and polls the store's generation number
(one tiny SELECT) every `refresh_seconds`; when it moved, the keys are reloaded. A key created
or revoked through AdminService therefore works, or stops working, in every service within
about one refresh interval, with no restart. If the store cannot be read the last view stays
in force (logged), so a database blip does not lock everyone out.

Besides the store: the bootstrap admin key (LLMOPS_ADMIN_KEY) and, in development mode only,
the well-known dev keys (LLMOPS_API_KEYS, default DEV_API_KEYS) and DEV_ADMIN_KEY.
Keys are never logged or put into errors; only their public key_id is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from llmops_kit.auth import Principal, Role
from llmops_kit.errors import Unauthenticated
from llmops_kit.keys import PLATFORM_TENANT, ApiKey, KeyStore, secret_matches, split_key
from llmops_kit.settings import (
    DEV_ADMIN_KEY,
    DEV_API_KEYS,
    MIN_ADMIN_KEY_CHARS,
    ServiceSettings,
    parse_api_keys,
)

log = logging.getLogger(__name__)

BOOTSTRAP_KEY_ID = "bootstrap"
DEV_ADMIN_KEY_ID = "dev-admin"
TOUCH_EVERY = timedelta(seconds=60)
NO_KEYS_MESSAGE = (
    "no API keys are configured, so no request could ever be served: set LLMOPS_ADMIN_KEY "
    f"(a bootstrap admin key, at least {MIN_ADMIN_KEY_CHARS} characters) and create tenants "
    "and keys with `llmops tenants create` / `llmops keys create`, or turn on the development "
    "mode with LLMOPS_DEV_MODE=true (well-known keys; never in production)")


class StartupRefused(RuntimeError):
    """The service must not start with this configuration (the message says what to set)."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class _Entry:
    secret_hash: str
    principal: Principal
    expires_at: datetime | None


class KeyResolver:
    """Resolves `x-api-key` values to principals (see module doc)."""

    def __init__(self, store: KeyStore | None, static: Mapping[str, Principal],
                 refresh_seconds: float = 1.0, require_keys: bool = False) -> None:
        self.store = store
        # Static keys are looked up by their digest so the plain keys are not kept around.
        self._static = {_digest(k): p for k, p in static.items()}
        self.refresh_seconds = refresh_seconds
        self.require_keys = require_keys
        self._keys: dict[str, _Entry] = {}
        self._generation: int | None = None
        self._used: dict[str, datetime] = {}
        self._last_touch: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if self.store is not None:
            await self.refresh()
        if self.require_keys and not self._static and not self._keys:
            raise StartupRefused(NO_KEYS_MESSAGE)
        if self.store is not None:
            self._task = asyncio.create_task(self._poll(), name="key-resolver")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._flush_used()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
                await self._flush_used()
            except Exception as exc:  # keep serving with the last view of the keys
                log.warning("key store not readable, keeping the last %d keys: %s",
                            len(self._keys), type(exc).__name__)

    async def refresh(self) -> bool:
        """Reloads the keys if the store's generation moved; True if it did."""
        assert self.store is not None
        store = self.store
        generation = await asyncio.to_thread(store.generation)
        if generation == self._generation:
            return False
        keys = await asyncio.to_thread(store.active_keys)
        self._keys = {k.key_id: self._entry(k) for k in keys}
        if self._generation is not None:
            log.info("API keys reloaded", extra={"keys": len(keys), "generation": generation})
        self._generation = generation
        return True

    @staticmethod
    def _entry(key: ApiKey) -> _Entry:
        return _Entry(key.secret_hash, Principal(key.tenant, key.role, key.key_id), key.expires_at)

    async def _flush_used(self) -> None:
        if not self._used or self.store is None:
            return
        used, self._used = self._used, {}
        await asyncio.to_thread(self.store.touch, used)

    # -- per request ------------------------------------------------------------------
    def resolve(self, key: str | None) -> Principal:
        """The key's principal; Unauthenticated (MISSING_API_KEY, INVALID_API_KEY,
        KEY_EXPIRED) otherwise. Never puts the key into the error."""
        if not key:
            raise Unauthenticated("MISSING_API_KEY", "send an API key in the 'x-api-key' metadata")
        static = self._static.get(_digest(key))
        if static is not None:
            return static
        parts = split_key(key)
        entry = self._keys.get(parts[0]) if parts else None
        if parts is None or entry is None or not secret_matches(parts[1], entry.secret_hash):
            raise Unauthenticated("INVALID_API_KEY", "the API key is unknown or was revoked")
        now = datetime.now(UTC)
        if entry.expires_at is not None and now >= entry.expires_at:
            raise Unauthenticated(
                "KEY_EXPIRED", f"API key {parts[0]} expired at {entry.expires_at.isoformat()}")
        self._note_use(parts[0], now)
        return entry.principal

    def _note_use(self, key_id: str, now: datetime) -> None:
        # last_used_at is written at most once a minute per key, off the request path.
        last = self._last_touch.get(key_id)
        if last is None or now - last >= TOUCH_EVERY:
            self._last_touch[key_id] = now
            self._used[key_id] = now


def static_principals(settings: ServiceSettings) -> dict[str, Principal]:
    """The bootstrap admin key and, in development mode, the dev keys."""
    keys: dict[str, Principal] = {}
    if settings.dev_mode:
        # An empty LLMOPS_API_KEYS (compose passes one through) means the default dev keys.
        for key, owner in (settings.api_key_map() or parse_api_keys(DEV_API_KEYS)).items():
            tenant, _, role = owner.partition(":")
            keys[key] = Principal(tenant, Role(role) if role else Role.MAINTAINER,
                                  f"dev-{tenant}-{role or Role.MAINTAINER.value}")
        keys[DEV_ADMIN_KEY] = Principal(PLATFORM_TENANT, Role.ADMIN, DEV_ADMIN_KEY_ID)
    if settings.admin_key is not None:
        keys[settings.admin_key.get_secret_value()] = Principal(
            PLATFORM_TENANT, Role.ADMIN, BOOTSTRAP_KEY_ID)
    return keys


def check_settings(settings: ServiceSettings) -> None:
    """Start-up checks of the auth settings that need no database."""
    if settings.dev_mode:
        return
    if settings.api_keys_configured():
        raise StartupRefused(
            "LLMOPS_API_KEYS is read only in development mode (LLMOPS_DEV_MODE=true); "
            "outside it, keys live in the key store: `llmops keys create`")
    admin = settings.admin_key
    if admin is not None and len(admin.get_secret_value()) < MIN_ADMIN_KEY_CHARS:
        raise StartupRefused(
            f"LLMOPS_ADMIN_KEY must be at least {MIN_ADMIN_KEY_CHARS} characters "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")


def build_resolver(settings: ServiceSettings, store: KeyStore | None = None) -> KeyResolver:
    """The resolver of a service: the shared key store plus the static keys its settings allow.

    `store` defaults to the platform database at settings.auth_database_url.
    """
    check_settings(settings)
    if store is None:
        from llmops_kit.sql_auth import SqlKeyStore, open_engine

        store = SqlKeyStore(open_engine(settings.auth_database_url))
    if settings.dev_mode:
        log.warning(
            "DEVELOPMENT MODE IS ON (LLMOPS_DEV_MODE=true): the well-known development API keys "
            "and the development admin key are accepted. Never run like this in production.")
    return KeyResolver(store, static_principals(settings), settings.auth_refresh_seconds,
                       require_keys=not settings.dev_mode)
