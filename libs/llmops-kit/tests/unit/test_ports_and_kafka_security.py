"""The ports file (one definition of every port) and the Kafka security settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from faststream.security import SASLScram512
from pydantic import SecretStr

from llmops_kit import ports
from llmops_kit.settings import KafkaSettings, ServiceSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(autouse=True)
def _no_port_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ports.defaults():
        monkeypatch.delenv(name, raising=False)
    for name in ("LLMOPS_KAFKA_BOOTSTRAP_SERVERS", "LLMOPS_KAFKA_SECURITY_PROTOCOL",
                 "LLMOPS_KAFKA_PASSWORD", "LLMOPS_KAFKA_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_the_ports_file_defines_every_service_and_the_infrastructure() -> None:
    values = ports.defaults()
    assert values["LLMOPS_LOCAL_HOST"] == "127.0.0.1"
    assert {name: ports.service_port(name) for name in ports.SERVICE_PORTS} == {
        "ingestion": 7061, "embedding": 7062, "vector-store": 7063, "safety": 7064,
        "model-registry": 7065, "inference": 7066, "observability": 7067, "trainer": 7068,
        "generation": 8090}
    assert (ports.port("KAFKA_PORT"), ports.port("WEAVIATE_PORT"),
            ports.port("WEAVIATE_GRPC_PORT")) == (9092, 8080, 8081)
    # No two services share a port.
    numbers = [int(v) for k, v in values.items() if k.endswith("_PORT")]
    assert len(numbers) == len(set(numbers))


def test_every_listening_port_is_below_the_ephemeral_range() -> None:
    # Linux hands out 32768-60999 to outgoing connections: a server started later on a port in
    # that range fails to bind whenever a client socket happens to hold it. Weaviate's data and
    # raft RPC ports are the gossip and raft ports + 1.
    values = ports.defaults()
    numbers = {k: int(v) for k, v in values.items() if k.endswith("_PORT")}
    numbers["POSTGRES_PORT"] = ports.port("POSTGRES_PORT")
    assert numbers and {k: n for k, n in numbers.items() if not 1024 < n + 1 < 32768} == {}


def test_the_repository_env_file_is_the_ports_file() -> None:
    # docker compose reads .env for ${VAR}; it must be this very file, not a copy.
    assert (REPO / ".env").resolve() == ports.PORTS_FILE.resolve()


def test_an_environment_variable_of_the_same_name_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_EMBEDDING_GRPC_PORT", "6062")
    monkeypatch.setenv("KAFKA_PORT", "19092")
    assert ports.service_address("embedding") == "127.0.0.1:6062"
    assert KafkaSettings().bootstrap_servers == "127.0.0.1:19092"
    monkeypatch.setenv("KAFKA_PORT", "nine")
    with pytest.raises(ValueError, match="KAFKA_PORT='nine' is not a port number"):
        ports.port("KAFKA_PORT")
    with pytest.raises(KeyError, match="NO_SUCH_PORT is not defined"):
        ports.port("NO_SUCH_PORT")


def test_settings_defaults_come_from_the_ports_file() -> None:
    assert KafkaSettings().bootstrap_servers == "127.0.0.1:9092"
    assert ServiceSettings().grpc_host == "127.0.0.1"


def test_plaintext_kafka_needs_no_options() -> None:
    settings = KafkaSettings()
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.client_options() == {"bootstrap_servers": "127.0.0.1:9092"}
    assert settings.broker_options() == {"bootstrap_servers": "127.0.0.1:9092", "security": None}


def test_sasl_reads_the_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secrets" / "kafka" / "llmops-platform.password"
    secret.parent.mkdir(parents=True)
    secret.write_text("s3cret-from-file\n")
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    monkeypatch.setenv("LLMOPS_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    settings = KafkaSettings()
    assert settings.client_options() == {
        "bootstrap_servers": "127.0.0.1:9092", "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "llmops-platform", "sasl_plain_password": "s3cret-from-file"}
    security = settings.broker_options()["security"]
    assert isinstance(security, SASLScram512)
    assert (security.username, security.password, security.use_ssl) == (
        "llmops-platform", "s3cret-from-file", False)
    # The secret never shows in the settings' repr (logs, errors).
    assert "s3cret" not in repr(settings)


def test_an_explicit_password_wins_and_a_missing_file_fails_at_start(tmp_path: Path) -> None:
    settings = KafkaSettings(security_protocol="SASL_PLAINTEXT", username="svc",
                             password=SecretStr("given"), password_file=tmp_path / "none")
    assert settings.client_options()["sasl_plain_password"] == "given"
    with pytest.raises(ValueError, match=r"kafka password_file: cannot read .*none"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT", password_file=tmp_path / "none")
