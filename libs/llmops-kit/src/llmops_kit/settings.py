"""Settings shared by every service (pydantic-settings, env prefix LLMOPS_)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmops_kit import ports

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


def llmops_home() -> Path:
    """The local stack's state folder: $LLMOPS_HOME, else .llmops under the working directory."""
    return Path(os.environ.get("LLMOPS_HOME") or ".llmops")


def secret_file(name: str) -> Path:
    """A secret the infra scripts generate under $LLMOPS_HOME/secrets (mode 600)."""
    return llmops_home() / "secrets" / name


def read_secret(path: Path, setting: str) -> SecretStr:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"{setting}: {path} is empty")
    return SecretStr(text)


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMOPS_KAFKA_", extra="ignore")

    bootstrap_servers: str = Field(default_factory=lambda: ports.local_address("KAFKA_PORT"))
    # Large enough for a batch of chunks with their vectors; the local broker allows 16 MiB.
    max_request_size: int = 8 * 1024 * 1024
    request_timeout_ms: int = 30_000
    # Authentication (docs/operations.md, "Kafka with SASL/SCRAM and ACLs"): PLAINTEXT talks
    # to the default local broker; SASL_PLAINTEXT to `KAFKA_SASL=1 kafka.sh start`.
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    username: str = "llmops-platform"
    # Unset: read from password_file, which kafka.sh writes for the platform's user.
    password: SecretStr | None = None
    password_file: Path = Field(
        default_factory=lambda: secret_file("kafka/llmops-platform.password"))

    @model_validator(mode="after")
    def _load_password(self) -> KafkaSettings:
        if self.security_protocol != "PLAINTEXT" and self.password is None:
            self.password = read_secret(self.password_file, "kafka password_file")
        return self

    def client_options(self) -> dict[str, Any]:
        """Connection options every aiokafka client (producer, consumer, admin) is built with:
        the bootstrap servers and, with SASL, the credentials."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers}
        if self.security_protocol == "PLAINTEXT":
            return options
        assert self.password is not None  # _load_password
        options |= {
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password.get_secret_value(),
        }
        if self.security_protocol == "SASL_SSL":
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context()
        return options

    def broker_options(self) -> dict[str, Any]:
        """The same for FastStream's KafkaBroker, which takes the credentials as an object."""
        return {"bootstrap_servers": self.bootstrap_servers, "security": self.broker_security()}

    def broker_security(self) -> Any:
        """The credentials as FastStream's security object (None: PLAINTEXT)."""
        if self.security_protocol == "PLAINTEXT":
            return None
        from faststream.security import SASLPlaintext, SASLScram256, SASLScram512

        kind = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256,
                "PLAIN": SASLPlaintext}[self.sasl_mechanism]
        options = self.client_options()
        return kind(self.username, options["sasl_plain_password"],
                    ssl_context=options.get("ssl_context"),
                    use_ssl=self.security_protocol == "SASL_SSL")


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
    grpc_host: str = Field(default_factory=ports.local_host)
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
