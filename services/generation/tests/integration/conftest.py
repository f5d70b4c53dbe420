"""One real generation server per engine: `python -m llmops_generation` with SmolLM2.

Every test that uses the server runs once per engine (transformers, llama.cpp), so the TGI
contract and the behaviour tests hold on both; LLMOPS_TEST_GENERATION_ENGINES (comma-separated)
narrows the list.

It runs as a subprocess, as in production, with HF_HUB_OFFLINE=1 in its own environment (the
huggingface_hub client under test must not have it; see the client tests). It runs in
float32: there left-padded batching gives bit-identical greedy output, which the concurrency
test asserts (bfloat16, the speed default, may drift after a few tokens; see the README).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from llmops_generation.bootstrap import default_spec
from llmops_generation.settings import Settings

REPO = Path(__file__).resolve().parents[4]
# A cold start converts the GGUF file once (~20 s on 2 quiet cores, minutes on a loaded machine).
STARTUP_TIMEOUT_S = 600

# Small limits keep every generation short; the contract tests rely on them.
SERVER_ENV = {
    "LLMOPS_GENERATION_DTYPE": "float32",
    "LLMOPS_GENERATION_MAX_INPUT_TOKENS": "256",
    "LLMOPS_GENERATION_MAX_TOTAL_TOKENS": "320",
    "LLMOPS_GENERATION_DEFAULT_MAX_NEW_TOKENS": "8",
    "LLMOPS_GENERATION_MAX_BATCH_SIZE": "8",
    # Flash attention off: llama.cpp's logits then do not depend on how a prompt is split, so a
    # prompt whose prefix is reused (prefix cache, on) gives bit-for-bit its uncached output,
    # which the equality tests assert (see the README's "Prompt prefix reuse").
    "LLMOPS_GENERATION_LLAMACPP_FLASH_ATTN": "off",
    "LLMOPS_ADMIN_KEY": "generation-test-admin-key",
}
ADMIN = {"x-api-key": SERVER_ENV["LLMOPS_ADMIN_KEY"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def llmops_home() -> Path:
    return Path(os.environ.get("LLMOPS_HOME", REPO / ".llmops"))


@pytest.fixture(scope="session")
def admin_headers() -> dict[str, str]:
    """What an admin route needs: the server's platform admin key."""
    return dict(ADMIN)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's models root: admin routes load only from under it."""
    return tmp_path_factory.mktemp("models-root")


ENGINES = [
    e for e in os.environ.get("LLMOPS_TEST_GENERATION_ENGINES", "transformers,llamacpp").split(",") if e
]


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The engine serving the default model (LLMOPS_GENERATION_ENGINE) in this run of a test."""
    return str(request.param)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory, models_root: Path, engine: str) -> Iterator[str]:
    port = _free_port()
    log_path = tmp_path_factory.mktemp("generation") / "server.log"
    env = {
        **os.environ,
        **SERVER_ENV,
        "LLMOPS_GENERATION_ENGINE": engine,
        "LLMOPS_GENERATION_PORT": str(port),
        "LLMOPS_GENERATION_MODELS_ROOT": str(models_root),
        "LLMOPS_HOME": str(llmops_home()),
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("LLMOPS_DEV_MODE", None)
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "llmops_generation"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"generation server exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"generation server not healthy in {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}"
                )
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def model_dir(server_url: str) -> Path:
    """The plain transformers folder the server converted the GGUF file into."""
    from llmops_generation.adapters.loader import TransformersLoader

    settings = Settings(llmops_home=llmops_home())
    return TransformersLoader(settings.models_dir).model_dir(default_spec(settings, frozenset()))


@pytest.fixture
async def http(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # The admin key goes with every request: the TGI routes ignore it.
    async with httpx.AsyncClient(base_url=server_url, timeout=120, headers=ADMIN) as client:
        yield client
