"""Inference's generator against the real generation server: a full-model (`hf`) registry
version is loaded through POST /admin/models on its first request, served under its own id,
and loaded again after the server lost it (as after a restart)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from llmops_inference.adapters.tgi import TgiGenerator
from llmops_inference.domain.model import ModelRef, RenderedPrompt

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(autouse=True)
def online_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub (inference's client) refuses even localhost in offline mode; the server
    keeps HF_HUB_OFFLINE=1 in its own process."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="module")
def fine_tuned(model_dir: Path, models_root: Path) -> Path:
    """A full-model version's folder under the models root (the base model's files, linked)."""
    folder = models_root / "registry" / "smollm2-ft-v2"
    folder.mkdir(parents=True, exist_ok=True)
    for file in model_dir.iterdir():
        if not (folder / file.name).exists():
            (folder / file.name).symlink_to(file)
    return folder


async def test_a_full_model_version_is_loaded_on_first_use(
        server_url: str, admin_headers: dict[str, str], fine_tuned: Path) -> None:
    generator = TgiGenerator(server_url, 120.0, 1, 0.1, admin_key=admin_headers["x-api-key"])
    version = ModelRef("smollm2", 2, "smollm2-v2", f"file://{fine_tuned}", full_model=True)
    prompt = RenderedPrompt("rag-answer", 1, "", "The capital of France is")
    async with httpx.AsyncClient(base_url=server_url, headers=admin_headers, timeout=60) as admin:
        try:
            await generator.prepare(version)
            models = {m["model_id"]: m["path"] for m in
                      (await admin.get("/admin/models")).json()["models"]}
            assert models["smollm2-v2"] == str(fine_tuned.resolve())  # noqa: ASYNC240
            first = await generator.generate(prompt, version, 6, None, None)
            assert first.model_version == "smollm2@2" and first.completion_tokens > 0

            # The server forgets it (restart): the 404 loads it again and the request succeeds.
            assert (await admin.delete("/admin/models/smollm2-v2")).status_code == 200
            again = await generator.generate(prompt, version, 6, None, None)
            assert again.text == first.text and again.model_version == "smollm2@2"
            listed = (await admin.get("/admin/models")).json()["models"]
            assert "smollm2-v2" in {m["model_id"] for m in listed}
        finally:
            await admin.delete("/admin/models/smollm2-v2")
            await generator.close()
