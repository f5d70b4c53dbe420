"""docker-compose.yml, services/*/Dockerfile, the pyprojects and the settings agree.

Everything here is offline. `docker-compose config` validates and normalises the file
without a Docker engine, and nothing is built or started. The checks read what compose
itself produced: anchors merged, ${VAR:-default} interpolated, ports and depends_on in
their long forms. The images' shared steps are run in test_image_build.py.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import typing
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, BaseModel

from deploy_support import (
    REPO,
    SERVICE_DIRS,
    SERVICES_DIR,
    Instruction,
    dockerfile,
    expand,
    pyproject_name,
)
from llmops_kit import ports

pytestmark = pytest.mark.unit

COMPOSE_FILE = REPO / "docker-compose.yml"

# The in-network Kafka listener, which every platform service must use.
KAFKA_IN_NETWORK = "kafka:19092"
# What each service needs healthy before it starts, beyond Kafka.
EXTRA_DEPENDENCIES = {
    "vector-store": {"weaviate"},
    "inference": {"vector-store", "model-registry", "safety", "generation"},
    "observability": {"clickhouse"},
}
# Services that serve HTTP (`host`/`port` settings) instead of gRPC, and need no Kafka.
HTTP_SERVICES = {"generation"}
# Services that load a model before they answer healthy: their start period is at least this.
SLOW_STARTS = {"generation": 120, "embedding": 60}
PROBE = ["python", "/opt/llmops/healthcheck.py"]


# ------------------------------------------------------------------ helpers


def run_compose(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not on PATH; `make setup` (infra/scripts/setup.sh) installs it")
    # compose interpolates ${LLMOPS_...:-default} from the caller's environment. Strip the
    # caller's LLMOPS_* so the checks see the file's own defaults.
    # The same for the ports file's names (KAFKA_PORT, WEAVIATE_PORT, ...), which .env supplies.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LLMOPS_") and k not in ports.defaults()}
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



def module_name(service: str) -> str:
    return pyproject_name(service).replace("-", "_")


def settings_class(service: str) -> Any:
    return importlib.import_module(f"{module_name(service)}.settings").Settings


def default_port(service: str) -> int:
    field = "port" if service in HTTP_SERVICES else "grpc_port"
    return int(settings_class(service).model_fields[field].get_default(call_default_factory=True))


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


# ------------------------------------------------------------------ ports and Weaviate's key


def test_published_ports_are_the_ports_file(compose: dict[str, Any]) -> None:
    def published(name: str) -> set[tuple[str, int]]:
        out = set()
        for entry in compose["services"][name].get("ports", []):
            if isinstance(entry, dict):
                out.add((str(entry.get("host_ip", "")), int(entry["published"])))
            else:  # short form, ip:host:container[/proto]
                ip, port, _ = str(entry).split("/")[0].rsplit(":", 2)
                out.add((ip, int(port)))
        return out

    host = ports.local_host()
    for service in SERVICE_DIRS:
        assert published(service) == {(host, ports.service_port(service))}, service
        # The container listens on the same number, its settings' default.
        assert container_ports(compose["services"][service]) == {default_port(service)}
    assert published("kafka") == {(host, ports.port("KAFKA_PORT"))}
    assert published("weaviate") == {(host, ports.port("WEAVIATE_PORT")),
                                     (host, ports.port("WEAVIATE_GRPC_PORT"))}


def test_no_service_port_is_written_out_anywhere_else() -> None:
    # Every port lives in llmops_kit/ports.env; a literal elsewhere would drift from it.
    literal = re.compile(r"""["'=:]\s*(5006[1-7]|8090|8080|8081)\b""")
    files = [COMPOSE_FILE, *REPO.glob("libs/*/src/**/*.py"), *REPO.glob("services/*/src/**/*.py"),
             *REPO.glob("tests/e2e/*.py"), *REPO.glob("bench/*.py")]
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in files for number, line in enumerate(path.read_text().splitlines(), 1)
             if literal.search(line) and not line.lstrip().startswith("#")
             and "uv run" not in line]
    assert not found, "\n".join(found)


def test_weaviate_in_compose_needs_the_api_key_and_the_vector_store_sends_it() -> None:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is not on PATH"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LLMOPS_") and k not in ports.defaults()}
    result = subprocess.run([exe, "-f", str(COMPOSE_FILE), "config"], cwd=REPO,
                            env={**env, "LLMOPS_WEAVIATE_API_KEY": "k-123"},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    weaviate = services["weaviate"]["environment"]
    assert (weaviate["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"],
            weaviate["AUTHENTICATION_APIKEY_ENABLED"]) == ("false", "true")
    assert weaviate["AUTHENTICATION_APIKEY_ALLOWED_KEYS"] == "k-123"
    assert services["vector-store"]["environment"]["LLMOPS_VECTORSTORE_WEAVIATE__API_KEY"] == "k-123"


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


@pytest.mark.parametrize("service", sorted(set(SERVICE_DIRS) - HTTP_SERVICES))
def test_keys_are_shared_and_development_mode_is_opt_in(compose: dict[str, Any], service: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every gRPC service reads the one platform database (keys created through the registry's
    AdminService work everywhere) and is in development mode only if LLMOPS_DEV_MODE says so."""
    settings = container_settings(compose, service, monkeypatch)
    assert settings.dev_mode is False and settings.admin_key is None
    assert not settings.api_keys_configured()
    assert settings.auth_database_url == "sqlite:////platform/platform.db"
    volumes = [str(v).split(":")[:2] for v in compose["services"][service].get("volumes", [])]
    assert ["platform-data", "/platform"] in volumes and "platform-data" in compose["volumes"]


# ------------------------------------------------------------------ observability


def _mounts(spec: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's volumes (binds resolved to absolute paths by compose)."""
    out = {}
    for entry in spec.get("volumes", []):
        if isinstance(entry, dict):
            out[entry["target"]] = str(entry.get("source", ""))
        else:
            source, target = str(entry).split(":")[:2]
            out[target] = source
    return out


def test_observability_writes_to_the_clickhouse_service(compose: dict[str, Any],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_CLICKHOUSE_PASSWORD", "")
    settings = container_settings(compose, "observability", monkeypatch)
    assert settings.clickhouse.dsn == "http://llmops@clickhouse:8123"
    assert not settings.clickhouse.embedded
    assert 8123 in container_ports(compose["services"]["clickhouse"])
    # Alone, the image keeps chDB on its /data folder (the runtime user's).
    assert dockerfile("observability").env()["LLMOPS_OBSERVABILITY_CLICKHOUSE__DSN"] == \
        "chdb:///data/observability"


def test_observability_gets_the_clickhouse_password_from_the_environment() -> None:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is not on PATH"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LLMOPS_") and k not in ports.defaults()}
    result = subprocess.run([exe, "-f", str(COMPOSE_FILE), "config"], cwd=REPO,
                            env={**env, "LLMOPS_CLICKHOUSE_PASSWORD": "p-1",
                                 "LLMOPS_CLICKHOUSE_GRAFANA_PASSWORD": "g-2"},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["observability"]["environment"][
        "LLMOPS_OBSERVABILITY_CLICKHOUSE__PASSWORD"] == "p-1"
    clickhouse = services["clickhouse"]["environment"]
    assert (clickhouse["CLICKHOUSE_LLMOPS_PASSWORD"],
            clickhouse["CLICKHOUSE_GRAFANA_PASSWORD"]) == ("p-1", "g-2")
    grafana = services["grafana"]["environment"]
    assert (grafana["CLICKHOUSE_USER"], grafana["CLICKHOUSE_PASSWORD"]) == ("grafana", "g-2")
    # Without a password the server refuses to start rather than serve an empty one.
    assert "exit 1" in " ".join(services["clickhouse"]["entrypoint"])


def test_clickhouse_and_grafana_mount_the_repository_configuration(
        compose: dict[str, Any]) -> None:
    clickhouse = _mounts(compose["services"]["clickhouse"])
    for kind in ("config.d", "users.d"):
        source = clickhouse[f"/etc/clickhouse-server/{kind}/llmops.xml"]
        assert source == str(REPO / "infra" / "clickhouse" / kind / "llmops.xml")
        assert (REPO / "infra" / "clickhouse" / kind / "llmops.xml").is_file()
    users = (REPO / "infra/clickhouse/users.d/llmops.xml").read_text()
    assert 'from_env="CLICKHOUSE_LLMOPS_PASSWORD"' in users
    assert "GRANT SELECT ON llmops.*" in users and "<readonly>2</readonly>" in users
    assert "/var/lib/clickhouse" in clickhouse
    grafana = compose["services"]["grafana"]
    assert grafana["environment"]["GF_INSTALL_PLUGINS"] == "grafana-clickhouse-datasource"
    # The datasource's server: the clickhouse service's HTTP interface, database llmops.
    env = grafana["environment"]
    assert (env["CLICKHOUSE_HOST"], int(env["CLICKHOUSE_PORT"]), env["CLICKHOUSE_PROTOCOL"],
            env["CLICKHOUSE_DATABASE"]) == ("clickhouse", 8123, "http", "llmops")
    assert _mounts(grafana)["/etc/grafana/provisioning"] == str(
        REPO / "infra" / "grafana" / "provisioning")
    assert grafana["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert [str(e).removesuffix("/tcp") for e in grafana["ports"]] == [
        f"{ports.local_host()}:{ports.port('GRAFANA_PORT')}:3000"]
