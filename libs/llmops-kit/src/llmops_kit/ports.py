"""The platform's ports and local address, defined once in `ports.env` next to this module.

The repository's `.env` links to the same file, so docker compose substitutes the same values,
and the infra scripts read it too. An environment variable of the same name wins, as it does
for the scripts and compose: `KAFKA_PORT=19092` moves the local broker and every client's
default with it. Settings use these as defaults (read when the settings are built, never at
import); a setting of their own still overrides them.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

PORTS_FILE = Path(__file__).with_name("ports.env")


@cache
def defaults() -> dict[str, str]:
    """The file's KEY=VALUE pairs (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(PORTS_FILE.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{PORTS_FILE}:{number}: not KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


def value(name: str) -> str:
    """The environment's value of `name`, else the file's; a name in neither is an error."""
    env = os.environ.get(name)
    if env:
        return env
    try:
        return defaults()[name]
    except KeyError:
        raise KeyError(f"{name} is not defined in {PORTS_FILE}") from None


def port(name: str) -> int:
    raw = value(name)
    try:
        number = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a port number") from None
    if not 0 < number < 65536:
        raise ValueError(f"{name}={number} is not a port number")
    return number


def local_host() -> str:
    """The address local processes listen on and dial (127.0.0.1 unless set otherwise)."""
    return value("LLMOPS_LOCAL_HOST")


def local_address(port_name: str) -> str:
    """`host:port` of a local service, e.g. local_address("LLMOPS_EMBEDDING_GRPC_PORT")."""
    return f"{local_host()}:{port(port_name)}"


def local_url(port_name: str, scheme: str = "http") -> str:
    return f"{scheme}://{local_address(port_name)}"


# The port names of the services, by service directory name (services/<name>).
SERVICE_PORTS = {
    "ingestion": "LLMOPS_INGESTION_GRPC_PORT",
    "embedding": "LLMOPS_EMBEDDING_GRPC_PORT",
    "vector-store": "LLMOPS_VECTORSTORE_GRPC_PORT",
    "safety": "LLMOPS_SAFETY_GRPC_PORT",
    "model-registry": "LLMOPS_REGISTRY_GRPC_PORT",
    "inference": "LLMOPS_INFERENCE_GRPC_PORT",
    "observability": "LLMOPS_OBSERVABILITY_GRPC_PORT",
    "trainer": "LLMOPS_TRAINER_GRPC_PORT",
    "generation": "LLMOPS_GENERATION_PORT",
}


def service_port(service: str) -> int:
    return port(SERVICE_PORTS[service])


def service_address(service: str) -> str:
    """Where a local service listens: `host:port`, e.g. for "embedding"."""
    return local_address(SERVICE_PORTS[service])


def metrics_port(env_prefix: str) -> int:
    """The /metrics port of the service whose settings read `env_prefix` (e.g. "LLMOPS_SAFETY_"):
    `<prefix>METRICS_PORT` from the environment or the file; 0 (disabled) when neither has one."""
    name = f"{env_prefix}METRICS_PORT"
    raw = os.environ.get(name) or defaults().get(name) or "0"
    if raw.strip() == "0":
        return 0
    return port(name)
