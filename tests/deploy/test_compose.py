"""docker-compose.yml, services/*/Dockerfile, the pyprojects and the settings agree.

Everything here is offline. `docker-compose config` validates and normalises the file
without a Docker engine, and nothing is built or started. The checks read what compose
itself produced: anchors merged, ${VAR:-default} interpolated, ports and depends_on in
their long forms. The images' shared steps (infra/docker/: staging, the venv install, the
runtime setup, the health probe) run here for real, on this checkout, with fakes only for
what would install packages or add users.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import typing
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import AliasChoices, BaseModel

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES_DIR = REPO / "services"
DOCKER_DIR = REPO / "infra/docker"
# Every services/<name> with a `python -m` entry point is a service that needs an image.
SERVICE_DIRS = sorted({p.parents[2].name for p in SERVICES_DIR.glob("*/src/*/__main__.py")})

# The in-network Kafka listener, which every platform service must use.
KAFKA_IN_NETWORK = "kafka:19092"
# What each service needs healthy before it starts, beyond Kafka.
EXTRA_DEPENDENCIES = {
    "vector-store": {"weaviate"},
    "inference": {"vector-store", "model-registry", "safety", "generation"},
}
# Services that serve HTTP (`host`/`port` settings) instead of gRPC, and need no Kafka.
HTTP_SERVICES = {"generation"}
# Services that load a model before they answer healthy: their start period is at least this.
SLOW_STARTS = {"generation": 120, "embedding": 60}
# The one index images whose lock closure holds torch take it from.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE = ["python", "/opt/llmops/healthcheck.py"]


# ------------------------------------------------------------------ helpers


def run_compose(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not on PATH; `make setup` (infra/scripts/setup.sh) installs it")
    # compose interpolates ${LLMOPS_...:-default} from the caller's environment. Strip the
    # caller's LLMOPS_* so the checks see the file's own defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    return subprocess.run(
        [exe, "-f", str(COMPOSE_FILE), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = run_compose("config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict) and config.get("services"), result.stdout
    return config


Instruction = tuple[str, str]


@dataclass(frozen=True)
class Dockerfile:
    """Logical instructions (continuations joined, comments dropped) as (KEYWORD, args)."""

    path: Path
    instructions: tuple[Instruction, ...]

    def stages(self) -> dict[str, tuple[Instruction, ...]]:
        """Each stage's instructions after its FROM, by name; the last one is "final"."""
        starts = [i for i, (kw, _) in enumerate(self.instructions) if kw == "FROM"]
        named: dict[str, tuple[Instruction, ...]] = {}
        for begin, end in zip(starts, [*starts[1:], len(self.instructions)], strict=True):
            _, _, alias = self.instructions[begin][1].partition(" AS ")
            named["final" if end == len(self.instructions) else alias] = self.instructions[begin + 1:end]
        return named

    def args(self, keyword: str, stage: str = "final") -> list[str]:
        return [args for kw, args in self.stages()[stage] if kw == keyword]

    def build_args(self, stage: str) -> dict[str, str]:
        """The ARGs in scope in a stage: its own defaults, else the global ones (Docker's rule)."""
        first_from = next(i for i, (kw, _) in enumerate(self.instructions) if kw == "FROM")
        global_defaults = dict(a.split("=", 1) for kw, a in self.instructions[:first_from]
                               if kw == "ARG" and "=" in a)
        scope: dict[str, str] = {}
        for declared in self.args("ARG", stage):
            name, sep, value = declared.partition("=")
            scope[name] = value if sep else global_defaults.get(name, "")
        return scope

    def env(self) -> dict[str, str]:
        """The final stage's ENV, with its ${ARG}s filled in."""
        build_args = self.build_args("final")
        values: dict[str, str] = {}
        for args in self.args("ENV"):
            for token in shlex.split(args):
                key, sep, value = token.partition("=")
                if sep:
                    values[key] = expand(value, build_args)
        return values


def expand(text: str, build_args: dict[str, str]) -> str:
    # Only build args: $PATH and the like stay as they are, as docker leaves them to the image.
    return re.sub(r"\$\{(\w+)\}", lambda m: build_args.get(m[1], m[0]), text)


@cache
def dockerfile(service: str) -> Dockerfile:
    path = SERVICES_DIR / service / "Dockerfile"
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not pending and not line):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return Dockerfile(path, tuple(instructions))


def pyproject_name(service: str) -> str:
    with (SERVICES_DIR / service / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["name"])


def module_name(service: str) -> str:
    return pyproject_name(service).replace("-", "_")


def settings_class(service: str) -> Any:
    return importlib.import_module(f"{module_name(service)}.settings").Settings


def default_port(service: str) -> int:
    field = "port" if service in HTTP_SERVICES else "grpc_port"
    return int(settings_class(service).model_fields[field].default)


def container_ports(spec: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for entry in spec.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:  # short form, [[ip:]host:]container[/proto]
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def container_settings(compose: dict[str, Any], service: str,
                       monkeypatch: pytest.MonkeyPatch) -> Any:
    """The service's Settings as built inside its container: image ENV, then compose's."""
    env = {**dockerfile(service).env(), **compose["services"][service].get("environment", {})}
    for key in [k for k in os.environ if k.startswith("LLMOPS_")]:
        monkeypatch.delenv(key)
    # Only the platform's own variables: HF_HOME and friends would leak into libraries that
    # read them once at import.
    for key, value in env.items():
        if key.startswith("LLMOPS_"):
            monkeypatch.setenv(key, "" if value is None else str(value))
    return settings_class(service)()


def settings_read(settings: type[BaseModel], name: str) -> bool:
    """Whether `settings` (a service's Settings) reads the env var `name`: its prefix plus a
    field, `__` into nested models (either side of a union), or a field's own alias."""

    def nested(annotation: Any, path: list[str]) -> bool:
        for model in [a for a in typing.get_args(annotation) or (annotation,)
                      if isinstance(a, type) and issubclass(a, BaseModel)]:
            field = model.model_fields.get(path[0])
            if field is not None and (len(path) == 1 or nested(field.annotation, path[1:])):
                return True
        return False

    prefix = str(settings.model_config.get("env_prefix", "")).upper()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias] if alias else []
        for env_name in [str(c).upper() for c in choices] or [prefix + field_name.upper()]:
            if name == env_name or (name.startswith(env_name + "__") and nested(
                    field.annotation, name[len(env_name) + 2:].lower().split("__"))):
                return True
    return False


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


# ------------------------------------------------------------------ compose and services


def test_compose_file_is_valid() -> None:
    result = run_compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_every_service_has_its_own_dockerfile() -> None:
    assert {"ingestion", "embedding", "vector-store", "model-registry", "generation",
            "safety", "inference"} <= set(SERVICE_DIRS)
    assert sorted(p.parent.name for p in SERVICES_DIR.glob("*/Dockerfile")) == SERVICE_DIRS


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_compose_builds_each_service_from_its_dockerfile(compose: dict[str, Any],
                                                         service: str) -> None:
    spec = compose["services"].get(service)
    assert spec is not None, f"services/{service} has no `{service}:` in compose"
    build = spec.get("build")
    assert isinstance(build, dict), f"{service}: no build section"
    # The workspace stage copies uv.lock and libs/, so the context must be the repository root.
    assert (REPO / build["context"]).resolve() == REPO
    assert (REPO / build["context"] / build["dockerfile"]).resolve() == dockerfile(service).path
    # Its values are the Dockerfile's own; compose passing others would hide them.
    assert not build.get("args"), f"{service}: build args"


def test_every_built_service_has_its_dockerfile(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        if "build" not in spec:
            continue
        context = REPO / spec["build"]["context"]
        assert context.is_dir(), f"{name}: build context {context} is missing"
        path = context / spec["build"].get("dockerfile", "Dockerfile")
        assert path.is_file(), f"{name}: {path} is missing"


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_dockerfile_values_match_the_service(service: str) -> None:
    image = dockerfile(service)
    workspace, final = image.build_args("workspace"), image.build_args("final")
    assert workspace["SERVICE_DIR"] == f"services/{service}"
    assert workspace["PACKAGE"] == image.build_args("build")["PACKAGE"] == pyproject_name(service)
    assert workspace["MODULE"] == module_name(service)
    assert (SERVICES_DIR / service / "src" / workspace["MODULE"] / "__main__.py").is_file()
    # Exec form: the service is PID 1 and gets docker's SIGTERM itself.
    assert [json.loads(a) for a in image.args("CMD")] == [["python", "-m", workspace["MODULE"]]]

    port = default_port(service)
    assert final["PORT"] == str(port)
    assert [expand(a, final) for a in image.args("EXPOSE")] == [str(port)]
    assert final["HEALTH"] == ("http" if service in HTTP_SERVICES else "grpc")
    # The probe reads its port and protocol from the image's ENV; `docker exec` sees it too.
    env = image.env()
    assert (env["LLMOPS_SERVICE_PORT"], env["LLMOPS_SERVICE_HEALTH"]) == (str(port), final["HEALTH"])
    (check,) = image.args("HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert json.loads(command) == PROBE
    start_period = re.search(r"--start-period=(\d+)s", options)
    assert start_period, f"{image.path}: HEALTHCHECK without its start period"
    assert int(start_period[1]) >= SLOW_STARTS.get(service, 10), f"{image.path}: start period"
    assert image.args("USER") == ["10001:10001"], f"{image.path}: must run as the image's user"


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_image_env_names_are_the_service_settings(service: str) -> None:
    settings = settings_class(service)
    # The helper itself tells a misspelt name from a real one.
    assert settings_read(settings, "LLMOPS_API_KEYS")
    assert not settings_read(settings, "LLMOPS_API_KEYS__X")
    assert not settings_read(settings, settings.model_config["env_prefix"].upper() + "GRPC_HOSTS")
    # LLMOPS_SERVICE_* are the probe's, not the service's. Any other LLMOPS_ name the service
    # would ignore is a typo (pydantic-settings ignores unknown variables).
    names = [n for n in dockerfile(service).env()
             if n.startswith("LLMOPS_") and not n.startswith("LLMOPS_SERVICE_")]
    assert names, f"{service}: the image sets none of its settings"
    for name in names:
        assert settings_read(settings, name), f"services/{service}/Dockerfile: {name} is no setting"


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_dockerfile_builds_with_the_shared_scripts(service: str) -> None:
    image = dockerfile(service)

    def in_order(stage: str, steps: list[Instruction]) -> bool:
        remaining = iter(image.stages()[stage])
        return all(step in remaining for step in steps)

    assert in_order("workspace", [
        ("COPY", ". /ctx"),
        ("RUN", "bash /ctx/infra/docker/stage-workspace.sh /ctx /out"),
    ]), image.path
    # Third-party dependencies (and CPU-only torch) first, from the manifests alone, so that
    # layer stays cached while sources change; the sources last.
    assert in_order("build", [
        ("COPY", "infra/docker/install-venv.sh /opt/build/"),
        ("COPY", "--from=workspace /out/deps /src/"),
        ("RUN", "cd /src && bash /opt/build/install-venv.sh deps"),
        ("COPY", "--from=workspace /out/sources /src/"),
        ("RUN", "cd /src && bash /opt/build/install-venv.sh sources"),
    ]), image.path
    assert in_order("final", [
        ("COPY", "infra/docker/setup-runtime.sh infra/docker/healthcheck.py /opt/llmops/"),
        ("RUN", "sh /opt/llmops/setup-runtime.sh"),
        ("COPY", "--from=build /app/.venv /app/.venv"),
        ("COPY", "--from=build /opt/llmops /opt/llmops"),
    ]), image.path
    # Torch is the shared install's decision, from the lock; no image has a say in it.
    assert "torch" not in image.path.read_text().lower()


def test_every_service_has_a_healthcheck_and_restarts(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        check = spec.get("healthcheck") or {}
        assert not check.get("disable") and check.get("test") != ["NONE"], f"{name}: disabled"
        if "build" in spec:
            # Its image's HEALTHCHECK, unless compose overrides it.
            assert check.get("test") or dockerfile(name).args("HEALTHCHECK"), name
        else:
            assert check.get("test"), f"{name}: no healthcheck"
        assert spec.get("restart") == "unless-stopped", f"{name}: restart policy"


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_service_waits_for_healthy_infrastructure(compose: dict[str, Any], service: str) -> None:
    depends_on = compose["services"][service].get("depends_on", {})
    base = set() if service in HTTP_SERVICES else {"kafka"}
    for needed in {*base, *EXTRA_DEPENDENCIES.get(service, set())}:
        assert needed in depends_on, f"{service} does not depend on {needed}"
        assert depends_on[needed].get("condition") == "service_healthy", (service, needed)


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_ports_and_env_match_settings(compose: dict[str, Any], service: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    port = default_port(service)
    spec = compose["services"][service]
    assert port in container_ports(spec), f"{service}: port {port} not published"

    # The env vars really reach the settings (right prefix, right field names).
    settings = container_settings(compose, service, monkeypatch)
    if service in HTTP_SERVICES:
        assert (settings.port, settings.host) == (port, "0.0.0.0"), f"{service}: listen address"
        return
    assert settings.grpc_port == port
    assert settings.grpc_host == "0.0.0.0", f"{service}: gRPC must bind all interfaces"
    assert settings.kafka.bootstrap_servers == KAFKA_IN_NETWORK
    assert "LLMOPS_API_KEYS" in spec.get("environment", {}), f"{service}: no *llmops-env"


def test_vector_store_reaches_weaviate_and_embedding(compose: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = container_settings(compose, "vector-store", monkeypatch)
    weaviate = settings.weaviate
    assert weaviate.kind == "remote"
    assert (weaviate.http_host, weaviate.grpc_host) == ("weaviate", "weaviate")
    assert not weaviate.http_secure and not weaviate.grpc_secure
    assert {weaviate.http_port, weaviate.grpc_port} <= container_ports(
        compose["services"]["weaviate"])
    assert settings.embedding.address == f"embedding:{default_port('embedding')}"


def test_inference_reaches_its_dependencies(compose: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    settings = container_settings(compose, "inference", monkeypatch)
    assert settings.vector_store_address == f"vector-store:{default_port('vector-store')}"
    assert settings.registry_address == f"model-registry:{default_port('model-registry')}"
    assert settings.safety_address == f"safety:{default_port('safety')}"
    assert settings.generation.url == f"http://generation:{default_port('generation')}"
    # Any other gRPC dependency added to the settings must be wired too: the 127.0.0.1
    # defaults point at the container itself.
    depends_on = compose["services"]["inference"].get("depends_on", {})
    for field in [f for f in type(settings).model_fields if f.endswith("_address")]:
        host, _, port = str(getattr(settings, field)).rpartition(":")
        assert host in compose["services"], f"inference {field}={host}:{port}"
        assert int(port) in container_ports(compose["services"][host]), (field, port)
        assert host in depends_on, f"inference does not depend on {host}"
    # huggingface_hub, once it has read HF_HUB_OFFLINE=1, refuses calls to the generation
    # server too, so the image must not set it.
    assert "HF_HUB_OFFLINE" not in dockerfile("inference").env()


def test_safety_starts_on_the_model_inside_the_image(compose: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Detoxify needs weights mounted into the container; without them the service must fall
    # back to alt-profanity-check rather than fail (or reach for the hub).
    settings = container_settings(compose, "safety", monkeypatch)
    assert not settings.detoxify.configured
    assert settings.policies.book() is not None
    assert dockerfile("safety").env().get("HF_HUB_OFFLINE") == "1"


def test_ingestion_keeps_its_database_on_a_volume(compose: dict[str, Any],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    settings = container_settings(compose, "ingestion", monkeypatch)
    assert settings.database_url == "sqlite:////data/ingestion.db"
    volumes = compose["services"]["ingestion"].get("volumes", [])
    mounts = [v["target"] if isinstance(v, dict) else str(v).split(":")[1] for v in volumes]
    assert "/data" in mounts
    assert compose["volumes"] and all(v.split(":")[0] in compose["volumes"]
                                      for v in volumes if isinstance(v, str))
    # The tokenizer is the file its docker-extra.sh copies into the image's /opt/llmops.
    assert settings.tokenizer.kind == "huggingface"
    assert str(settings.tokenizer.path) == "/opt/llmops/model/tokenizer.json"
    assert '"$out/model/"' in (SERVICES_DIR / "ingestion" / "docker-extra.sh").read_text()


def test_infrastructure_images_match_the_local_scripts(compose: dict[str, Any]) -> None:
    pom = (REPO / "infra/kafka/pom.xml").read_text()
    kafka_version = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert kafka_version, "infra/kafka/pom.xml: no kafka.version"
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{kafka_version[1]}"

    script = (REPO / "infra/scripts/weaviate.sh").read_text()
    weaviate_version = re.search(r"WEAVIATE_VERSION:-v?([0-9.]+)", script)
    assert weaviate_version, "infra/scripts/weaviate.sh: no WEAVIATE_VERSION"
    assert compose["services"]["weaviate"]["image"].endswith(f":{weaviate_version[1]}")


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".llmops", "**/__pycache__"} <= patterns


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
    code, calls = run_setup_runtime(tmp_path, "50061", "grpc")
    assert code == 0
    assert [c[0] for c in calls] == ["groupadd", "useradd", "mkdir", "chown"]
    uid = calls[1][calls[1].index("--uid") + 1]
    gid = calls[0][calls[0].index("--gid") + 1]
    # The uid:gid every Dockerfile's USER names.
    assert {tuple(dockerfile(s).args("USER")) for s in SERVICE_DIRS} == {(f"{uid}:{gid}",)}
    assert calls[2:] == [["mkdir", "-p", "/data"], ["chown", "llmops:llmops", "/data"]]


@pytest.mark.parametrize(("port", "protocol"), [("grpc", "grpc"), ("70000", "grpc"), ("", "grpc"),
                                                ("50061", "tcp"), ("50061", "")])
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
