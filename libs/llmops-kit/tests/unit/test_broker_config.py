"""The local broker's size limits derive from the kit's one setting (kafka.sh render)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import REPO

pytestmark = pytest.mark.unit


def _render(home: Path, **env: str) -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(REPO / "infra/scripts/kafka.sh"), "render"],
        env={**os.environ, "LLMOPS_HOME": str(home), "KAFKA_PORT": "19999", **env},
        capture_output=True, text=True, check=True, timeout=60,
    )
    text = Path(out.stdout.strip()).read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert not re.search(r"@[A-Z_]+@", body)  # every placeholder was filled
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


@pytest.mark.parametrize("record_bytes", [None, 4 * 1024 * 1024])
def test_rendered_broker_limits_match_the_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record_bytes: int | None
) -> None:
    env = {} if record_bytes is None else {"LLMOPS_KAFKA_MAX_RECORD_BYTES": str(record_bytes)}
    monkeypatch.delenv("LLMOPS_KAFKA_MAX_RECORD_BYTES", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = KafkaSettings()  # reads LLMOPS_KAFKA_MAX_RECORD_BYTES like the script does
    props = _render(tmp_path, **env)
    for name in ("message.max.bytes", "replica.fetch.max.bytes",
                 "replica.fetch.response.max.bytes"):
        assert int(props[name]) == settings.broker_max_message_bytes
    assert settings.producer_max_request_size < int(props["message.max.bytes"])
    assert settings.consumer_fetch_bytes >= int(props["message.max.bytes"])
    assert int(props["socket.request.max.bytes"]) >= settings.broker_max_message_bytes


def test_compose_broker_has_the_default_limit() -> None:
    compose = (REPO / "docker-compose.yml").read_text()
    expected = KafkaSettings(max_record_bytes=16 * 1024 * 1024).broker_max_message_bytes
    for key in ("KAFKA_MESSAGE_MAX_BYTES", "KAFKA_REPLICA_FETCH_MAX_BYTES"):
        assert re.search(rf"{key}: (\d+)", compose)[1] == str(expected)  # type: ignore[index]
