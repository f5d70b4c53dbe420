"""Settings shared by every service (pydantic-settings, env prefix LLMOPS_)."""

from __future__ import annotations

import os

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmops_kit.auth import Role

# The well-known keys of the development mode (LLMOPS_DEV_MODE=true) only: `key=tenant[:role]`,
# a key without a role is its tenant's maintainer. Outside development mode keys live in the
# key store (`llmops keys create`).
DEV_API_KEYS = ("dev-key-default=default,dev-key-acme=acme,dev-key-globex=globex,"
                "dev-member-acme=acme:member")
# The platform admin key of the development mode only.
DEV_ADMIN_KEY = "dev-admin-key"
# Minimum length of a bootstrap admin key outside development mode.
MIN_ADMIN_KEY_CHARS = 24


def parse_api_keys(raw: str) -> dict[str, str]:
    """`key=tenant[:role],...` -> {key: "tenant[:role]"}. A malformed entry fails start-up."""
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, owner = item.partition("=")
        tenant, _, role = owner.strip().partition(":")
        if not sep or not key.strip() or not tenant.strip():
            # The entry itself is never echoed: it holds a key.
            raise ValueError(f"api_keys entry #{len(keys) + 1} is not key=tenant[:role]")
        if role and role not in Role.__members__.values():
            raise ValueError(f"api_keys entry #{len(keys) + 1}: unknown role {role!r} "
                             f"(one of {', '.join(r.value for r in Role)})")
        keys[key.strip()] = owner.strip()
    return keys


def default_auth_database_url() -> str:
    """The platform database (tenants, keys, audit log) under $LLMOPS_HOME (default .llmops)."""
    return f"sqlite:///{os.environ.get('LLMOPS_HOME') or '.llmops'}/data/platform.db"


def service_config(prefix: str) -> SettingsConfigDict:
    """model_config of a service's Settings: its own env prefix, `__` for nested fields."""
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", env_nested_delimiter="__",
                              hide_input_in_errors=True)


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMOPS_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    # Large enough for a batch of chunks with their vectors; the local broker allows 16 MiB.
    max_request_size: int = 8 * 1024 * 1024
    request_timeout_ms: int = 30_000


class ServiceSettings(BaseSettings):
    """Base for each service's Settings; subclasses add their own fields.

    Subclasses set their own env prefix (LLMOPS_INGESTION_, ...) for their fields; the
    platform-wide ones below (auth, log level) are read from LLMOPS_* in every service.
    """

    # Errors name the field, never its value (which may be a key).
    model_config = SettingsConfigDict(env_prefix="LLMOPS_", extra="ignore", env_nested_delimiter="__",
                                      hide_input_in_errors=True)

    service_name: str = "llmops"
    log_level: str = Field(
        default="INFO", validation_alias=AliasChoices("log_level", "LLMOPS_LOG_LEVEL")
    )
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50060
    grpc_grace_seconds: float = 10.0
    api_keys: str = Field(
        default=DEV_API_KEYS,
        description="development mode only: key=tenant[:role] pairs, comma separated",
        validation_alias=AliasChoices("api_keys", "LLMOPS_API_KEYS"),
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    dev_mode: bool = Field(
        default=False,
        description="development mode: the well-known dev keys are accepted",
        validation_alias=AliasChoices("dev_mode", "LLMOPS_DEV_MODE"),
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="bootstrap platform admin key",
        validation_alias=AliasChoices("admin_key", "LLMOPS_ADMIN_KEY"),
    )
    auth_database_url: str = Field(
        default_factory=default_auth_database_url,
        description="tenants, API keys and the audit log, shared by every service",
        validation_alias=AliasChoices("auth_database_url", "LLMOPS_AUTH_DATABASE_URL"),
    )
    auth_refresh_seconds: float = Field(
        default=1.0, gt=0, le=2.0,
        description="how often each service polls the key store for created/revoked keys",
        validation_alias=AliasChoices("auth_refresh_seconds", "LLMOPS_AUTH_REFRESH_SECONDS"),
    )

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, value: str) -> str:
        parse_api_keys(value)
        return value

    @field_validator("admin_key")
    @classmethod
    def _empty_admin_key_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    def api_key_map(self) -> dict[str, str]:
        return parse_api_keys(self.api_keys)

    def api_keys_configured(self) -> bool:
        """Whether LLMOPS_API_KEYS was set (to something), not just defaulted."""
        return "api_keys" in self.model_fields_set and bool(self.api_keys.strip())
