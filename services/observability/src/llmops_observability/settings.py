"""Observability settings (env prefix LLMOPS_OBSERVABILITY_): the ClickHouse store, the
writer's batches, retention per table and the thresholds the event mapping applies."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from llmops_kit import ports
from llmops_kit.settings import ServiceSettings, llmops_home, read_secret, service_config

# Retention in days per table (0 keeps rows forever). Answers and scores are what the
# dashboards look back over; raw events and dead letters are for the recent past; registry
# history and the corpus sample are small and stay.
DEFAULT_TTL_DAYS: dict[str, int] = {
    "events": 30,
    "answers": 90,
    "document_events": 90,
    "safety_verdicts": 90,
    "registry_changes": 0,
    "dead_letters": 30,
    "scores": 180,
    "drift": 180,
    "corpus_sample": 0,
    "training_steps": 365,
}

# best_retrieval_score under this counts as weak retrieval. Chosen on the sample corpus with
# the shipped embedding model (bench/weak_retrieval_threshold.py): questions the corpus answers
# scored 0.29-0.64 (cosine), off-topic questions 0.00-0.16.
DEFAULT_WEAK_RETRIEVAL_THRESHOLD = 0.25


def default_dsn() -> str:
    """chDB (the embedded engine) under $LLMOPS_HOME/data/observability, as an absolute path."""
    return f"chdb://{(llmops_home() / 'data' / 'observability').resolve()}"


class ClickHouseSettings(BaseModel):
    """Where the store is: `chdb:///abs/dir` (embedded, in this process: the local default) or
    `http(s)://user@host:8123` (a ClickHouse server). One code path for both."""

    dsn: str = Field(default_factory=default_dsn)
    database: str = Field(default="llmops", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # A server's password: this, else the file (a mounted secret). Never part of the dsn.
    password: SecretStr | None = None
    password_file: Path | None = None
    # Seconds to keep retrying the first connection (a server may still be starting).
    connect_timeout_seconds: float = Field(default=60.0, ge=0)

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("chdb", "http", "https"):
            raise ValueError("dsn must be chdb:///abs/dir or http(s)://user@host:port")
        if scheme == "chdb" and not rest.startswith("/"):
            raise ValueError("a chdb dsn needs an absolute path: chdb:///abs/dir")
        if scheme != "chdb" and ":" in rest.partition("@")[0] and "@" in rest:
            raise ValueError("put the password in password or password_file, not in the dsn")
        return value

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb://")

    def chdb_path(self) -> Path | None:
        return Path(self.dsn.removeprefix("chdb://")) if self.embedded else None

    def secret(self) -> str | None:
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return read_secret(self.password_file, "clickhouse password_file").get_secret_value()
        return None


class Settings(ServiceSettings):
    model_config = service_config("LLMOPS_OBSERVABILITY_")

    service_name: str = "observability"
    grpc_port: int = Field(default_factory=lambda: ports.service_port("observability"))
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    consumer_group: str = "observability"
    # The writer inserts once per table per consumer batch: a batch closes at this many
    # records or after this long, whichever comes first.
    batch_max_records: int = Field(default=10_000, ge=1, le=100_000)
    batch_timeout_ms: int = Field(default=200, ge=1, le=60_000)
    # table -> days; what is given is merged onto DEFAULT_TTL_DAYS (0 = keep forever).
    ttl_days: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_TTL_DAYS))
    weak_retrieval_threshold: float = Field(
        default=DEFAULT_WEAK_RETRIEVAL_THRESHOLD, ge=0.0, le=1.0)
    # Share of chunk vectors kept in corpus_sample (the drift monitor's corpus reference),
    # chosen by a hash of the chunk id, so every replica and every replay keeps the same ones.
    corpus_sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)

    @field_validator("ttl_days")
    @classmethod
    def _merge_ttl(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(DEFAULT_TTL_DAYS))
        if unknown:
            raise ValueError(f"ttl_days: unknown tables {unknown} "
                             f"(known: {', '.join(DEFAULT_TTL_DAYS)})")
        negative = sorted(t for t, d in value.items() if d < 0)
        if negative:
            raise ValueError(f"ttl_days: days must be >= 0 (0 = forever), not for {negative}")
        return {**DEFAULT_TTL_DAYS, **value}

    @model_validator(mode="after")
    def _password_readable(self) -> Settings:
        self.clickhouse.secret()  # a missing or empty secret file fails start-up here
        return self
