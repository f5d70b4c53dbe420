"""Settings shared by every service (pydantic-settings, env prefix LLMOPS_)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmops_kit import ports
from llmops_kit.auth import Role
from llmops_kit.tracing import TracingSettings

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
    return f"sqlite:///{llmops_home()}/data/platform.db"


def service_config(prefix: str) -> SettingsConfigDict:
    """model_config of a service's Settings: its own env prefix, `__` for nested fields."""
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", env_nested_delimiter="__",
                              hide_input_in_errors=True)


# Room on top of a record for the dead-letter headers (bounded, see kafka_dlq) and the record
# batch framing, so anything a consumer accepted can be republished to its `.dlq` topic.
RECORD_HEADROOM_BYTES = 64 * 1024
# The broker's framing of a batch of one record on top of the producer's estimate.
BATCH_HEADROOM_BYTES = 64 * 1024


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
    """How every Kafka client of the platform is built (EventBus, ensure_topics, tests).

    Size limits derive from one setting, `max_record_bytes`, so they agree end to end:
    producer max_request_size <= broker message.max.bytes <= consumer fetch sizes.
    """

    model_config = SettingsConfigDict(env_prefix="LLMOPS_KAFKA_", extra="ignore")

    bootstrap_servers: str = Field(default_factory=lambda: ports.local_address("KAFKA_PORT"))
    request_timeout_ms: int = 30_000
    max_record_bytes: int = Field(
        default=16 * 1024 * 1024, ge=64 * 1024,
        description="largest record (key + value + headers) producers send and consumers handle; "
                    "a consumed record over it is dead-lettered as RECORD_TOO_LARGE",
    )
    dlq_payload_bytes: int = Field(
        default=64 * 1024, ge=0,
        description="bytes of a too-large record's value kept in its dead letter",
    )
    dlq_retention_ms: int = Field(
        default=14 * 24 * 3600 * 1000, ge=-1,
        description="retention.ms of every `.dlq` topic (-1: keep forever)",
    )
    max_handler_failures: int = Field(
        default=5, ge=1,
        description="failures of one record, with dependencies healthy, before it is "
                    "dead-lettered as HANDLER_FAILED",
    )

    retry_window_seconds: float = Field(
        default=120.0, gt=0,
        description="how long a failing batch is retried in place before it is rewound "
                    "(sought back) and delivered again",
    )
    lag_refresh_seconds: float = Field(
        default=5.0, gt=0,
        description="how often each consumer's lag (llmops_consumer_lag) is refreshed",
    )

    # Authentication (docs/operations.md, "Kafka with SASL/SCRAM and ACLs"): PLAINTEXT talks
    # to the default local broker; SASL_PLAINTEXT to `KAFKA_SASL=1 kafka.sh start`.
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    username: str = "llmops-platform"
    # Unset: read from password_file, which kafka.sh writes for the platform's user.
    password: SecretStr | None = None
    password_file: Path = Field(
        default_factory=lambda: secret_file("kafka/llmops-platform.password"))

    @property
    def producer_max_request_size(self) -> int:
        """max_request_size of producers: a full record plus the dead-letter headers."""
        return self.max_record_bytes + RECORD_HEADROOM_BYTES

    @property
    def broker_max_message_bytes(self) -> int:
        """message.max.bytes / replica.fetch.max.bytes of the broker (infra/scripts/kafka.sh)."""
        return self.producer_max_request_size + BATCH_HEADROOM_BYTES

    @property
    def consumer_fetch_bytes(self) -> int:
        """max_partition_fetch_bytes of consumers: any record the broker accepts can be fetched,
        so an oversized record is seen (and dead-lettered), never stuck below the fetch size."""
        return self.broker_max_message_bytes

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
    platform-wide ones below (auth, log level) are read from LLMOPS_* in every service.
    """

    # Errors name the field, never its value (which may be a key).
    model_config = SettingsConfigDict(env_prefix="LLMOPS_", extra="ignore", env_nested_delimiter="__",
                                      hide_input_in_errors=True)

    service_name: str = "llmops"
    log_level: str = Field(
        default="INFO", validation_alias=AliasChoices("log_level", "LLMOPS_LOG_LEVEL")
    )
    grpc_host: str = Field(default_factory=ports.local_host)
    grpc_port: int = 7060
    grpc_grace_seconds: float = 10.0
    # Draining (gRPC grace, consumers committing, resources closing) must end within this; past
    # it the process dumps its stacks and exits with 1 (runner.py). 0 or less: no deadline.
    shutdown_timeout_seconds: float = Field(
        default=60.0,
        validation_alias=AliasChoices("shutdown_timeout_seconds", "LLMOPS_SHUTDOWN_TIMEOUT_SECONDS"),
    )
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

    # Telemetry (docs/operations.md, "Metrics and traces"). The metrics port defaults to
    # `<env prefix>METRICS_PORT` in ports.env (e.g. LLMOPS_SAFETY_METRICS_PORT), 0 disables;
    # the host to grpc_host, so /metrics is reachable exactly where the service's API is
    # (127.0.0.1 locally, the container's network in an image).
    metrics_host: str = Field(default="", description="address the /metrics endpoint "
                                                      "listens on; default: grpc_host")
    metrics_port: int = Field(default=0, ge=0, lt=65536,
                              description="port of the /metrics endpoint; 0: none")
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    @model_validator(mode="after")
    def _default_metrics_port(self) -> ServiceSettings:
        if "metrics_port" not in self.model_fields_set:
            self.metrics_port = ports.metrics_port(str(self.model_config.get("env_prefix", "")))
        if not self.metrics_host:
            self.metrics_host = self.grpc_host
        return self

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

    def platform_admin_keys(self) -> list[str]:
        """The keys that act as the platform admin outside the key store: LLMOPS_ADMIN_KEY,
        and DEV_ADMIN_KEY in development mode only. Empty: no such key exists."""
        keys = [self.admin_key.get_secret_value()] if self.admin_key else []
        if self.dev_mode:
            keys.append(DEV_ADMIN_KEY)
        return [k for k in keys if k]
