"""The images' shared steps (infra/docker/: staging, the venv install, the runtime setup, the
health probe) run here for real, on this checkout, with fakes only for what would install
packages or add users. Nothing is built or started.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from concurrent import futures
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from deploy_support import REPO, SERVICE_DIRS, SERVICES_DIR, dockerfile, pyproject_name

pytestmark = pytest.mark.unit

DOCKER_DIR = REPO / "infra/docker"
# The one index images whose lock closure holds torch take it from.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


# ------------------------------------------------------------------ helpers


@cache
def locked_closure(service: str) -> tuple[frozenset[str], frozenset[str]]:
    """What uv.lock installs for this service: (third-party names, workspace member paths)."""
    exe = shutil.which("uv")
    if exe is None:
        pytest.fail("uv is not on PATH")
    result = subprocess.run(
        [exe, "export", "--frozen", "--no-dev", "--package", pyproject_name(service),
         "--no-hashes", "--no-header", "--no-annotate"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines()
             if line and not line.startswith((" ", "#"))]
    members = frozenset(line.removeprefix("-e ./") for line in lines if line.startswith("-e ./"))
    names = frozenset(re.split(r"[=<>~!; \[]", line, maxsplit=1)[0].lower()
                      for line in lines if not line.startswith("-e "))
    return names, members


def stage_workspace(out: Path, args: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's workspace stage, run on this checkout as the build context."""
    env = {k: v for k, v in os.environ.items() if k not in {"SERVICE_DIR", "PACKAGE", "MODULE"}}
    return subprocess.run(
        ["bash", str(DOCKER_DIR / "stage-workspace.sh"), str(REPO), str(out)],
        cwd=REPO, env={**env, **args}, capture_output=True, text=True, timeout=60, check=False,
    )


def fake_commands(folder: Path, log: Path, names: dict[str, str]) -> dict[str, str]:
    """Scripts named like commands that log their arguments (one JSON list a line) and then
    run the given shell snippet; the env that puts them first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, then in names.items():
        script = folder / name
        script.write_text(f"#!/bin/sh\n{shlex.quote(sys.executable)} -c 'import json, sys; "
                          f"print(json.dumps(sys.argv[1:]))' {name} \"$@\" >> {shlex.quote(str(log))}\n"
                          f"{then}\n")
        script.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}


def logged(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# ------------------------------------------------------------------ the images' shared steps


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_workspace_stage_copies_the_lock_closure(service: str, tmp_path: Path) -> None:
    # The final `uv sync --no-editable` builds each workspace member in the closure from its
    # sources; one that was not copied fails the build ("Distribution not found").
    result = stage_workspace(tmp_path / "out", dockerfile(service).build_args("workspace"))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    _, members = locked_closure(service)
    assert f"services/{service}" in members
    extra = SERVICES_DIR / service / "docker-extra.sh"
    deps = {str(p.relative_to(out / "deps")) for p in (out / "deps").rglob("*") if p.is_file()}
    assert deps == {"pyproject.toml", "uv.lock", *(f"{m}/pyproject.toml" for m in members),
                    *(["docker-extra.sh"] if extra.is_file() else [])}
    if extra.is_file():
        assert (out / "deps" / "docker-extra.sh").read_bytes() == extra.read_bytes()
    for member in members:
        assert (out / "sources" / member / "src").is_dir(), member
    assert {str(p.parent.relative_to(out / "sources"))
            for p in (out / "sources").glob("*/*/pyproject.toml")} == members
    # A Dockerfile edit must not rebuild the venv layers.
    assert not list((out / "sources").rglob("Dockerfile"))


@pytest.mark.parametrize(("arg", "value"), [
    ("PACKAGE", "llmops-safety"),
    ("MODULE", "llmops_nothing"),
    ("SERVICE_DIR", "services/missing"),
])
def test_workspace_stage_rejects_a_wrong_build_arg(arg: str, value: str, tmp_path: Path) -> None:
    args = {**dockerfile("ingestion").build_args("workspace"), arg: value}
    result = stage_workspace(tmp_path / "out", args)
    assert result.returncode != 0
    assert arg in result.stderr


def install_venv(step: str, workspace: Path, tmp_path: Path, uv: str,
                 package: str) -> list[list[str]]:
    """install-venv.sh STEP with `uv` and the venv's python faked by logging scripts; `uv`
    then runs the shell snippet `uv`. Returns every logged call so far."""
    log = tmp_path / "calls.log"
    env = fake_commands(tmp_path / "bin", log, {"uv": uv, "extra-step": ""})
    fake_commands(tmp_path / "venv/bin", log, {"python": ""})
    subprocess.run(["bash", str(DOCKER_DIR / "install-venv.sh"), step], cwd=workspace, check=True,
                   env={**env, "PACKAGE": package, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
                        "LLMOPS_IMAGE_DIR": str(tmp_path / "image")}, timeout=60)
    return logged(log)


CUDA_CHECK = ["python", "-c", "import torch; assert torch.version.cuda is None, torch.version.cuda"]


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_venv_install_takes_cpu_torch_when_the_lock_has_torch(service: str,
                                                              tmp_path: Path) -> None:
    # The real `uv export` of the staged lock decides; `uv sync` and `uv pip` only log.
    out = tmp_path / "out"
    package = dockerfile(service).build_args("build")["PACKAGE"]
    assert stage_workspace(out, dockerfile(service).build_args("workspace")).returncode == 0
    (out / "deps" / "docker-extra.sh").unlink(missing_ok=True)  # the next test's
    real_uv = f'[ "$1" != export ] || exec {shutil.which("uv")} "$@"'
    install_venv("deps", out / "deps", tmp_path, real_uv, package)
    calls = [c for c in install_venv("sources", out / "deps", tmp_path, real_uv, package)
             if c[:2] != ["uv", "export"]]

    names, _ = locked_closure(service)
    gpu = {n for n in names if n in {"torch", "triton"} or n.startswith(("nvidia-", "cuda-"))}
    skip = {"--inexact", *(f"--no-install-package={n}" for n in gpu)} if "torch" in names else set()
    syncs = [c for c in calls if c[:2] == ["uv", "sync"]]
    assert [(c[:6], set(c[6:-1]), c[-1]) for c in syncs] == [
        (["uv", "sync", "--frozen", "--no-dev", "--package", package], skip, flag)
        for flag in ("--no-install-workspace", "--no-editable")
    ]
    installs = [c for c in calls if c not in syncs]
    if "torch" not in names:
        assert installs == [], f"{service} installs torch without it in its lock"
        return
    with (REPO / "uv.lock").open("rb") as f:
        (torch,) = [p["version"] for p in tomllib.load(f)["package"] if p["name"] == "torch"]
    # The locked version, from the CPU index, checked; the CUDA packages skipped in both syncs.
    assert installs == [["uv", "pip", "install", "--python", str(tmp_path / "venv/bin/python"),
                         "--no-deps", "--index-url", TORCH_CPU_INDEX, f"torch=={torch}"], CUDA_CHECK]
    assert {"torch", "triton"} < gpu and any(n.startswith("nvidia-") for n in gpu)


def test_venv_install_runs_the_service_extra_step(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "docker-extra.sh").write_text('extra-step "$1" "$PWD"\n')
    calls = install_venv("deps", workspace, tmp_path, 'echo "torch==1.0"', "p")
    # After the dependencies, in the workspace root, with the folder the image keeps as $1.
    assert calls[-2:] == [CUDA_CHECK, ["extra-step", str(tmp_path / "image"), str(workspace)]]
    assert (tmp_path / "image").is_dir()
    # Without one, the step has nothing more to do.
    (workspace / "docker-extra.sh").unlink()
    assert install_venv("deps", workspace, tmp_path, 'echo "torch==1.0"', "p")[-1] == CUDA_CHECK


def run_setup_runtime(tmp_path: Path, port: str, protocol: str) -> tuple[int, list[list[str]]]:
    """setup-runtime.sh with groupadd, useradd, mkdir and chown faked (it runs as root)."""
    log = tmp_path / "calls.log"
    env = fake_commands(tmp_path / "bin", log, {c: "" for c in ("groupadd", "useradd", "mkdir", "chown")})
    shutil.copy(DOCKER_DIR / "setup-runtime.sh", tmp_path)
    shutil.copy(DOCKER_DIR / "healthcheck.py", tmp_path)
    env = {**env, "PATH": f"{env['PATH']}:{Path(sys.executable).parent}",
           "LLMOPS_SERVICE_PORT": port, "LLMOPS_SERVICE_HEALTH": protocol}
    result = subprocess.run(["sh", str(tmp_path / "setup-runtime.sh")], env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    return result.returncode, logged(log)


def test_runtime_setup_adds_the_image_user_and_data_folder(tmp_path: Path) -> None:
    code, calls = run_setup_runtime(tmp_path, "7061", "grpc")
    assert code == 0
    assert [c[0] for c in calls] == ["groupadd", "useradd", "mkdir", "chown"]
    uid = calls[1][calls[1].index("--uid") + 1]
    gid = calls[0][calls[0].index("--gid") + 1]
    # The uid:gid every Dockerfile's USER names.
    assert {tuple(dockerfile(s).args("USER")) for s in SERVICE_DIRS} == {(f"{uid}:{gid}",)}
    assert calls[2:] == [["mkdir", "-p", "/data", "/platform"],
                         ["chown", "llmops:llmops", "/data", "/platform"]]


@pytest.mark.parametrize(("port", "protocol"), [("grpc", "grpc"), ("70000", "grpc"), ("", "grpc"),
                                                ("7061", "tcp"), ("7061", "")])
def test_runtime_setup_fails_the_build_on_a_wrong_port_or_protocol(
    tmp_path: Path, port: str, protocol: str
) -> None:
    code, calls = run_setup_runtime(tmp_path, port, protocol)
    assert code == 2
    assert calls == [], "changed the image before the check"


def run_probe(protocol: str, port: int | str, *args: str) -> int:
    env = {**os.environ, "LLMOPS_SERVICE_HEALTH": protocol, "LLMOPS_SERVICE_PORT": str(port)}
    return subprocess.run([sys.executable, str(DOCKER_DIR / "healthcheck.py"), *args], env=env,
                          capture_output=True, timeout=30, check=False).returncode


@pytest.fixture
def grpc_health_server() -> Iterator[tuple[int, health.HealthServicer, grpc.Server]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer, server
    server.stop(None)


def test_health_probe_speaks_grpc_health(
    grpc_health_server: tuple[int, health.HealthServicer, grpc.Server],
) -> None:
    port, servicer, server = grpc_health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert run_probe("grpc", port) == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert run_probe("grpc", port) == 1
    # --check only reads the variables: it passes whatever the service says.
    assert run_probe("grpc", port, "--check") == 0
    server.stop(None)
    assert run_probe("grpc", port) == 1


def test_health_probe_speaks_http_health() -> None:
    status = {"code": 200}

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status["code"] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        assert run_probe("http", port) == 0
        status["code"] = 503
        assert run_probe("http", port) == 1
        # The gRPC probe on an HTTP port fails rather than passing by accident.
        assert run_probe("grpc", port) == 1
        assert run_probe("tcp", port) == 2
        assert run_probe("http", "http") == 2
    finally:
        server.shutdown()
        server.server_close()
