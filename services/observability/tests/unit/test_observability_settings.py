"""Settings: defaults, TTL merging, the dsn and the password file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmops_observability.settings import DEFAULT_TTL_DAYS, Settings

pytestmark = pytest.mark.unit


def test_defaults_are_local_chdb_on_loopback(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    s = Settings()
    assert s.clickhouse.dsn == f"chdb://{tmp_path.resolve()}/data/observability"
    assert s.clickhouse.embedded and s.clickhouse.chdb_path() == tmp_path / "data/observability"
    assert (s.grpc_host, s.grpc_port, s.consumer_group) == ("127.0.0.1", 7067, "observability")
    assert s.ttl_days == DEFAULT_TTL_DAYS
    assert s.clickhouse.secret() is None
    assert (s.weak_retrieval_threshold, s.corpus_sample_rate) == (0.25, 0.1)


def test_ttl_days_given_are_merged_onto_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_OBSERVABILITY_TTL_DAYS", '{"answers": 7, "events": 0}')
    s = Settings()
    assert (s.ttl_days["answers"], s.ttl_days["events"]) == (7, 0)
    assert s.ttl_days["scores"] == DEFAULT_TTL_DAYS["scores"]


@pytest.mark.parametrize(("value", "message"), [
    ('{"answerz": 7}', "unknown tables"),
    ('{"answers": -1}', "days must be >= 0"),
])
def test_a_wrong_ttl_fails_start_up(monkeypatch: pytest.MonkeyPatch, value: str,
                                    message: str) -> None:
    monkeypatch.setenv("LLMOPS_OBSERVABILITY_TTL_DAYS", value)
    with pytest.raises(ValidationError, match=message):
        Settings()


@pytest.mark.parametrize(("dsn", "message"), [
    ("chdb://relative/dir", "absolute path"),
    ("mysql://host", "dsn must be"),
    ("http://default:secret@clickhouse:8123", "password_file"),
])
def test_a_wrong_dsn_fails_start_up(monkeypatch: pytest.MonkeyPatch, dsn: str,
                                    message: str) -> None:
    monkeypatch.setenv("LLMOPS_OBSERVABILITY_CLICKHOUSE__DSN", dsn)
    with pytest.raises(ValidationError, match=message) as info:
        Settings()
    assert "secret" not in str(info.value)


def test_the_server_password_comes_from_its_file(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    secret = tmp_path / "ch.password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("LLMOPS_OBSERVABILITY_CLICKHOUSE__DSN", "http://llmops@clickhouse:8123")
    monkeypatch.setenv("LLMOPS_OBSERVABILITY_CLICKHOUSE__PASSWORD_FILE", str(secret))
    s = Settings()
    assert not s.clickhouse.embedded and s.clickhouse.secret() == "s3cret"
    monkeypatch.setenv("LLMOPS_OBSERVABILITY_CLICKHOUSE__PASSWORD_FILE", str(tmp_path / "nope"))
    with pytest.raises(ValidationError, match="clickhouse password_file: cannot read"):
        Settings()


def test_thresholds_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_OBSERVABILITY_CORPUS_SAMPLE_RATE", "1.5")
    with pytest.raises(ValidationError, match="corpus_sample_rate"):
        Settings()
