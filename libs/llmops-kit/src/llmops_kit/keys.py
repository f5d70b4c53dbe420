"""Tenants and API keys as data: the records, the key format and the store port.

A key is `lk_<key_id>_<secret>`. `key_id` is public (shown, logged, recorded as the actor of
audit entries); only the SHA-256 of the high-entropy secret is stored, and it is compared with
`hmac.compare_digest`. The secret is returned once, by the call that creates the key.

Every change to tenants or keys bumps the store's generation number, a cheap marker the
services poll (see llmops_kit.key_resolver) so that a created or revoked key takes effect
everywhere within seconds, without restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from llmops_kit.auth import Role
from llmops_kit.errors import InvalidArgument

KEY_PREFIX = "lk"
# The platform's own tenant: the bootstrap and development admin keys belong to it. It always
# exists and can be neither created nor deleted.
PLATFORM_TENANT = "platform"
TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_KEY = re.compile(r"^lk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    """A key's record: everything but its secret (the store keeps only the secret's hash)."""

    key_id: str
    tenant: str
    role: Role
    description: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    secret_hash: str = ""

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def public(self) -> ApiKey:
        """The record without its hash: what leaves the store."""
        return replace(self, secret_hash="")

    def as_dict(self) -> dict[str, str | None]:
        """The audit log's view (never the hash)."""
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {"key_id": self.key_id, "tenant": self.tenant, "role": self.role.value,
                "description": self.description, "created_at": iso(self.created_at),
                "expires_at": iso(self.expires_at), "revoked_at": iso(self.revoked_at)}


def check_tenant_id(tenant_id: str) -> str:
    if not TENANT_ID.match(tenant_id):
        raise InvalidArgument("INVALID_TENANT_ID",
                              "tenant ids are 1-63 lowercase letters, digits and '-', "
                              "starting with a letter or digit")
    return tenant_id


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """(key_id, full key to hand out once, hash of its secret to store)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secret}", hash_secret(secret)


def split_key(key: str) -> tuple[str, str] | None:
    """(key_id, secret) of a key in the store's format; None for anything else."""
    match = _KEY.match(key)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


class KeyStore(Protocol):
    """Tenants and keys. Synchronous (SQLAlchemy); async callers use asyncio.to_thread."""

    def create_tenant(self, tenant_id: str, display_name: str, now: datetime) -> Tenant: ...

    def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    def list_tenants(self) -> list[Tenant]: ...

    def delete_tenant(self, tenant_id: str, now: datetime) -> tuple[Tenant | None, list[ApiKey]]:
        """Removes the tenant and revokes its keys: (the removed tenant, the keys revoked)."""
        ...

    def create_key(self, key: ApiKey) -> ApiKey: ...

    def get_key(self, key_id: str) -> ApiKey | None: ...

    def list_keys(self, tenant: str | None, include_revoked: bool) -> list[ApiKey]: ...

    def revoke_key(self, key_id: str, now: datetime) -> tuple[ApiKey, ApiKey] | None:
        """(before, after) of the key, or None if there is no such key."""
        ...

    def generation(self) -> int:
        """A number that changes whenever a tenant or key does (the services poll it)."""
        ...

    def active_keys(self) -> list[ApiKey]:
        """Every key not revoked, with its secret hash (expired ones too: see KEY_EXPIRED)."""
        ...

    def touch(self, used: dict[str, datetime]) -> None:
        """Records last-used times; does not change the generation."""
        ...
