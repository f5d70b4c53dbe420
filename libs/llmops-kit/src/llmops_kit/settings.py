"""Settings shared by every service (pydantic-settings, env prefix LLMOPS_)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Local-development keys; production sets LLMOPS_API_KEYS to its own.
DEV_API_KEYS = "dev-key-default=default,dev-key-acme=acme,dev-key-globex=globex"
# The platform admin key of the development mode (LLMOPS_DEV_MODE=true) only.
DEV_ADMIN_KEY = "dev-admin-key"


def parse_api_keys(raw: str) -> dict[str, str]:
    """`key=tenant,key2=tenant2` -> {key: tenant}. A malformed entry fails start-up."""
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, tenant = item.partition("=")
        if not sep or not key.strip() or not tenant.strip():
            raise ValueError(f"api_keys entry {item!r} is not key=tenant")
        keys[key.strip()] = tenant.strip()
    return keys


def service_config(prefix: str) -> SettingsConfigDict:
    """model_config of a service's Settings: its own env prefix, `__` for nested fields."""
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", env_nested_delimiter="__")


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMOPS_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    # Large enough for a batch of chunks with their vectors; the local broker allows 16 MiB.
    max_request_size: int = 8 * 1024 * 1024
    request_timeout_ms: int = 30_000


class ServiceSettings(BaseSettings):
    """Base for each service's Settings; subclasses add their own fields.

    Subclasses set their own env prefix (LLMOPS_INGESTION_, ...) for their fields; the
    platform-wide ones below (API keys, log level) are read from LLMOPS_* in every service.
    """

    model_config = SettingsConfigDict(env_prefix="LLMOPS_", extra="ignore", env_nested_delimiter="__")

    service_name: str = "llmops"
    log_level: str = Field(
        default="INFO", validation_alias=AliasChoices("log_level", "LLMOPS_LOG_LEVEL")
    )
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50060
    grpc_grace_seconds: float = 10.0
    api_keys: str = Field(
        default=DEV_API_KEYS,
        description="key=tenant pairs, comma separated",
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

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, value: str) -> str:
        parse_api_keys(value)
        return value

    def api_key_map(self) -> dict[str, str]:
        return parse_api_keys(self.api_keys)

    def platform_admin_keys(self) -> list[str]:
        """The keys that act as the platform admin outside the key store: LLMOPS_ADMIN_KEY,
        and DEV_ADMIN_KEY in development mode only. Empty: no such key exists."""
        keys = [self.admin_key.get_secret_value()] if self.admin_key else []
        if self.dev_mode:
            keys.append(DEV_ADMIN_KEY)
        return [k for k in keys if k]
