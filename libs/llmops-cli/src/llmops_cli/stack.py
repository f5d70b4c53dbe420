"""Starts and stops the local stack: infrastructure (infra scripts) and the services."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmops_kit import ports


def repo_root() -> Path:
    env = os.environ.get("LLMOPS_REPO")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "infra" / "scripts").is_dir() and (parent / "protos").is_dir():
            return parent
    return Path.cwd()


def llmops_home() -> Path:
    return Path(os.environ.get("LLMOPS_HOME", repo_root() / ".llmops"))


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    # "grpc": the standard gRPC health service; "http": GET /health answers 200 (TGI's API).
    protocol: str = "grpc"
    # Its settings' env prefix, when it is not LLMOPS_<NAME without dashes>_.
    env_prefix: str = ""

    @property
    def port(self) -> int:
        """Its port: llmops_kit's ports file, or the env var of the same name."""
        return ports.service_port(self.name)

    @property
    def port_variable(self) -> str:
        """The service's own port setting, which wins over anything shared."""
        prefix = self.env_prefix or "LLMOPS_" + self.name.upper().replace("-", "") + "_"
        return prefix + ("GRPC_PORT" if self.protocol == "grpc" else "PORT")

    @property
    def metrics_variable(self) -> str | None:
        """Its /metrics port setting (gRPC services; generation serves TGI's on its own port)."""
        return self.port_variable.removesuffix("GRPC_PORT") + "METRICS_PORT" \
            if self.protocol == "grpc" else None


SERVICES = (
    # First up, last down: it records what the others publish (from the start of each topic).
    ServiceSpec("observability", "llmops_observability"),
    ServiceSpec("embedding", "llmops_embedding"),
    ServiceSpec("vector-store", "llmops_vectorstore"),
    ServiceSpec("ingestion", "llmops_ingestion"),
    ServiceSpec("safety", "llmops_safety"),
    ServiceSpec("model-registry", "llmops_registry", env_prefix="LLMOPS_REGISTRY_"),
    ServiceSpec("generation", "llmops_generation", protocol="http"),
    ServiceSpec("inference", "llmops_inference"),
    # Last up, first down: its jobs register versions in the registry.
    ServiceSpec("trainer", "llmops_trainer"),
)
INFRA = ("kafka", "weaviate")


def infra(name: str, action: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    script = repo_root() / "infra" / "scripts" / f"{name}.sh"
    return subprocess.run(["bash", str(script), action], check=check, text=True,
                          capture_output=action in ("status", "health"))


def _pid_file(name: str, replica: int = 0) -> Path:
    suffix = f"-{replica}" if replica else ""
    return llmops_home() / "run" / f"{name}{suffix}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def service_pid(name: str, replica: int = 0) -> int | None:
    path = _pid_file(name, replica)
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().strip())
    except ValueError:
        return None
    return pid if _alive(pid) else None


def start_service(spec: ServiceSpec, replica: int = 0, env: dict[str, str] | None = None) -> int:
    """Starts one replica in the background; replica N>0 listens on port + 100*N."""
    existing = service_pid(spec.name, replica)
    if existing:
        return existing
    home = llmops_home()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    (home / "run").mkdir(parents=True, exist_ok=True)
    suffix = f"-{replica}" if replica else ""
    log = open(home / "logs" / f"{spec.name}{suffix}.log", "ab")  # noqa: SIM115
    child_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                 **(env or {})}
    child_env[spec.port_variable] = str(spec.port + 100 * replica)
    if spec.metrics_variable:  # replica N serves /metrics on its port + 100*N too (0: none)
        given = child_env.get(spec.metrics_variable)
        metrics = int(given) if given else \
            ports.metrics_port(spec.metrics_variable.removesuffix("METRICS_PORT"))
        child_env[spec.metrics_variable] = str(metrics + 100 * replica if metrics else 0)
    proc = subprocess.Popen(
        [sys.executable, "-m", spec.module], cwd=repo_root(), env=child_env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    _pid_file(spec.name, replica).write_text(str(proc.pid))
    return proc.pid


def stop_service(name: str, replica: int = 0, kill: bool = False, timeout: float = 30) -> None:
    pid = service_pid(name, replica)
    if pid is None:
        _pid_file(name, replica).unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _pid_file(name, replica).unlink(missing_ok=True)


async def health(port: int, timeout: float = 1.0, protocol: str = "grpc") -> str:
    if protocol == "http":
        return await _http_health(port, timeout)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))
    except grpc.aio.AioRpcError as exc:
        return "UNREACHABLE" if exc.code() == grpc.StatusCode.UNAVAILABLE else exc.code().name


def _get_status(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


async def _http_health(port: int, timeout: float) -> str:
    code = await asyncio.to_thread(_get_status, f"http://127.0.0.1:{port}/health", timeout)
    return {0: "UNREACHABLE", 200: "SERVING"}.get(code, "NOT_SERVING")


def _get_json(url: str, timeout: float) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


async def numeric_format(port: int, timeout: float = 1.0) -> dict[str, str] | None:
    """The generation server's numeric format, why it was chosen, and its engine (/info), or None."""
    info = await asyncio.to_thread(_get_json, f"http://127.0.0.1:{port}/info", timeout)
    if not isinstance(info, dict) or not info.get("model_dtype"):
        return None
    fmt = {"model_dtype": str(info["model_dtype"]), "dtype_reason": str(info.get("dtype_reason") or "")}
    if info.get("engine"):
        fmt["engine"] = str(info["engine"])
        fmt["decode_path"] = str(info.get("decode_path") or "")
    return fmt


def status_line(name: str, entry: dict[str, Any]) -> str:
    """One line of `llmops status`: an infra script's own line, or a service's health."""
    if entry.get("detail"):
        return str(entry["detail"])
    line = f"{name}: {entry.get('health')}"
    if entry.get("model_dtype"):
        reason = entry.get("dtype_reason")
        line += f" ({entry['model_dtype']}: {reason})" if reason else f" ({entry['model_dtype']})"
    if entry.get("engine"):
        line += f" engine {entry['engine']}"
        if entry.get("decode_path"):
            line += f": {entry['decode_path']}"
    return line


async def wait_healthy(port: int, timeout: float = 120.0, protocol: str = "grpc") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await health(port, protocol=protocol) == "SERVING":
            return True
        await asyncio.sleep(0.5)
    return False
