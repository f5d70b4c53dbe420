"""docker-compose.yml, services/*/Dockerfile, the pyprojects and the settings classes agree.

Everything here is offline. `docker-compose config` validates and normalises the file
without a Docker engine, and nothing is built or started. The checks read what compose
itself produced: anchors merged, ${VAR:-default} interpolated, ports and depends_on in
their long forms.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES_DIR = REPO / "services"
SERVICE_DIRS = sorted(p.parent.name for p in SERVICES_DIR.glob("*/Dockerfile"))

# The in-network Kafka listener, which every platform service must use.
KAFKA_IN_NETWORK = "kafka:19092"
# What each service needs healthy before it starts, beyond Kafka.
EXTRA_DEPENDENCIES = {
    "vector-store": {"weaviate"},
    "inference": {"vector-store", "model-registry", "safety", "generation"},
}
# The one index every image that installs torch takes it from (see the embedding Dockerfile).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


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


@dataclass(frozen=True)
class Dockerfile:
    """Logical instructions (continuations joined, comments dropped) as (KEYWORD, args)."""

    path: Path
    instructions: tuple[tuple[str, str], ...]

    @property
    def final_stage(self) -> tuple[tuple[str, str], ...]:
        starts = [i for i, (kw, _) in enumerate(self.instructions) if kw == "FROM"]
        return self.instructions[starts[-1]:] if starts else self.instructions

    def args(self, keyword: str, *, final: bool = True) -> list[str]:
        source = self.final_stage if final else self.instructions
        return [args for kw, args in source if kw == keyword]

    def packages(self) -> set[str]:
        return {m for run in self.args("RUN", final=False)
                for m in re.findall(r"--package[= ]+([A-Za-z0-9._-]+)", run)}

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.args("ENV"):
            for token in shlex.split(args):
                key, sep, value = token.partition("=")
                if sep:
                    values[key] = value
        return values

    def exposed_ports(self) -> set[int]:
        return {int(p.split("/")[0]) for args in self.args("EXPOSE") for p in args.split()}


@cache
def dockerfile(service: str) -> Dockerfile:
    path = SERVICES_DIR / service / "Dockerfile"
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not pending and not line):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return Dockerfile(path, tuple(instructions))


def pyproject_name(service: str) -> str:
    with (SERVICES_DIR / service / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["name"])


def module_name(service: str) -> str:
    return pyproject_name(service).replace("-", "_")


def settings_class(service: str) -> Any:
    return importlib.import_module(f"{module_name(service)}.settings").Settings


def default_grpc_port(service: str) -> int:
    return int(settings_class(service).model_fields["grpc_port"].default)


# Services that serve HTTP (`host`/`port` settings) instead of gRPC, and need no Kafka.
HTTP_SERVICES = {"generation"}


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


def healthcheck_text(spec: dict[str, Any]) -> str:
    test = spec.get("healthcheck", {}).get("test", [])
    return test if isinstance(test, str) else " ".join(map(str, test))


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


# ------------------------------------------------------------------ tests


def test_compose_file_is_valid() -> None:
    result = run_compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_there_are_service_dockerfiles() -> None:
    assert {"ingestion", "embedding", "vector-store", "model-registry", "generation",
            "safety", "inference"} <= set(SERVICE_DIRS)


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_every_service_dockerfile_is_built_by_compose(compose: dict[str, Any],
                                                       service: str) -> None:
    spec = compose["services"].get(service)
    assert spec is not None, f"services/{service}/Dockerfile has no `{service}:` in compose"
    build = spec.get("build")
    assert isinstance(build, dict), f"{service}: no build section"
    built = (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).resolve()
    assert built == (SERVICES_DIR / service / "Dockerfile").resolve()
    # Dockerfiles COPY libs/ and uv.lock, so the context must be the repository root.
    assert (REPO / build["context"]).resolve() == REPO


def test_every_built_service_has_its_dockerfile(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        if "build" not in spec:
            continue
        context = REPO / spec["build"]["context"]
        assert context.is_dir(), f"{name}: build context {context} is missing"
        path = context / spec["build"].get("dockerfile", "Dockerfile")
        assert path.is_file(), f"{name}: {path} is missing"


def test_every_service_has_a_healthcheck_and_restarts(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        check = spec.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert check["test"] != ["NONE"], f"{name}: healthcheck disabled"
        assert spec.get("restart") == "unless-stopped", f"{name}: restart policy"


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_service_waits_for_healthy_infrastructure(compose: dict[str, Any], service: str) -> None:
    depends_on = compose["services"][service].get("depends_on", {})
    base = set() if service in HTTP_SERVICES else {"kafka"}
    for needed in {*base, *EXTRA_DEPENDENCIES.get(service, set())}:
        assert needed in depends_on, f"{service} does not depend on {needed}"
        assert depends_on[needed].get("condition") == "service_healthy", (service, needed)


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_dockerfile_package_matches_pyproject(service: str) -> None:
    image = dockerfile(service)
    assert image.packages() == {pyproject_name(service)}, image.path
    assert json.loads(image.args("CMD")[-1]) == ["python", "-m", module_name(service)]
    assert image.args("USER"), f"{image.path}: runs as root"
    assert image.args("USER")[-1].split(":")[0] not in {"root", "0"}
    assert image.args("HEALTHCHECK"), f"{image.path}: no HEALTHCHECK"


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_ports_and_env_match_settings(compose: dict[str, Any], service: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    port = default_port(service)
    spec = compose["services"][service]
    image = dockerfile(service)

    assert port in image.exposed_ports(), f"{image.path}: EXPOSE {port}"
    probe = f"127.0.0.1:{port}/" if service in HTTP_SERVICES else f"127.0.0.1:{port}'"
    assert probe in " ".join(image.args("HEALTHCHECK")), image.path
    assert port in container_ports(spec), f"{service}: port {port} not published"
    assert probe in healthcheck_text(spec), f"{service}: healthcheck port"

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
    assert settings.embedding.address == f"embedding:{default_grpc_port('embedding')}"


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


def build_stage_text(image: Dockerfile) -> str:
    return " ".join(args for _, args in image.instructions[:-len(image.final_stage)])


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_image_copies_every_workspace_package_it_installs(service: str) -> None:
    # The final `uv sync --no-editable` builds each workspace member in the closure from its
    # sources; one that was not copied fails the build ("Distribution not found").
    image = dockerfile(service)
    copied = {args.split()[0].rstrip("/") for args in image.args("COPY", final=False)}
    _, members = locked_closure(service)
    assert f"services/{service}" in members
    assert members <= copied, f"{image.path}: does not COPY {sorted(members - copied)}"


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_images_with_torch_install_it_cpu_only(service: str) -> None:
    image = dockerfile(service)
    build_stage = build_stage_text(image)
    names, _ = locked_closure(service)
    if "torch" not in names:
        assert "TORCH_INDEX_URL" not in build_stage, f"{image.path}: torch not in its lock"
        return
    # The PyPI wheel would pull several GB of CUDA libraries that a CPU service never loads.
    assert f"TORCH_INDEX_URL={TORCH_CPU_INDEX}" in image.args("ARG", final=False), image.path
    assert '--index-url "$TORCH_INDEX_URL"' in build_stage, image.path
    assert "--no-install-package=" in build_stage, f"{image.path}: CUDA packages not skipped"
    assert "torch.version.cuda is None" in build_stage, f"{image.path}: no CPU-only check"


def test_ingestion_keeps_its_database_on_a_volume(compose: dict[str, Any],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    settings = container_settings(compose, "ingestion", monkeypatch)
    assert settings.database_url == "sqlite:////data/ingestion.db"
    volumes = compose["services"]["ingestion"].get("volumes", [])
    mounts = [v["target"] if isinstance(v, dict) else str(v).split(":")[1] for v in volumes]
    assert "/data" in mounts
    assert compose["volumes"] and all(v.split(":")[0] in compose["volumes"]
                                      for v in volumes if isinstance(v, str))


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
