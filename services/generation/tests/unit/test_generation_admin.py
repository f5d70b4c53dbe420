"""Admin routes: the platform admin key, paths under the models root, 404 for unknown selectors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmops_generation.bootstrap import build_app
from llmops_generation.settings import Settings
from llmops_kit.settings import DEV_ADMIN_KEY

pytestmark = pytest.mark.unit

KEY = "s3cret-admin"


def app_client(tmp_path: Path, loader, **settings: object) -> TestClient:
    root = tmp_path / "models"
    root.mkdir(exist_ok=True)
    base = dict(model_path=tmp_path, gguf_file=None, model_id="fake/model", max_input_tokens=40,
                max_total_tokens=60, models_root=root)
    return TestClient(build_app(Settings(**{**base, **settings}), loader=loader))


@pytest.fixture
def client(tmp_path: Path, loader) -> Iterator[TestClient]:
    with app_client(tmp_path, loader, admin_key=KEY) as c:
        yield c


def adapter_dir(where: Path) -> Path:
    where.mkdir(parents=True)
    (where / "adapter_config.json").write_text("{}")
    return where


@pytest.mark.parametrize(("headers", "status", "error_type"), [
    ({}, 401, "unauthorized"),
    ({"x-api-key": "wrong"}, 403, "forbidden"),
    ({"authorization": "Bearer wrong"}, 403, "forbidden"),
    ({"authorization": f"Basic {KEY}"}, 401, "unauthorized"),
    ({"x-api-key": KEY}, 200, None),
    ({"authorization": f"Bearer {KEY}"}, 200, None),
])
def test_admin_routes_need_the_admin_key(client, headers, status, error_type) -> None:
    for method, path in (("GET", "/admin/models"), ("GET", "/admin/adapters"),
                         ("POST", "/admin/adapters"), ("DELETE", "/admin/adapters/x"),
                         ("POST", "/admin/models"), ("DELETE", "/admin/models/x")):
        response = client.request(method, path, headers=headers)
        if status == 200:
            assert response.status_code not in (401, 403), (method, path)
        else:
            assert response.status_code == status, (method, path)
            body = response.json()
            assert body["error_type"] == error_type and KEY not in body["error"]
    # The TGI routes stay open.
    assert client.post("/generate", json={"inputs": "q|a"}, headers=headers).status_code == 200


def test_without_any_admin_key_admin_routes_are_refused(tmp_path, loader, monkeypatch) -> None:
    monkeypatch.delenv("LLMOPS_ADMIN_KEY", raising=False)
    monkeypatch.delenv("LLMOPS_DEV_MODE", raising=False)
    with app_client(tmp_path, loader) as c:
        for headers in ({}, {"x-api-key": DEV_ADMIN_KEY}, {"x-api-key": ""}):
            response = c.get("/admin/models", headers=headers)
            assert response.status_code == 403
            assert response.json() == {
                "error": "admin routes are disabled: set LLMOPS_ADMIN_KEY on the generation server",
                "error_type": "forbidden",
            }


def test_dev_mode_accepts_the_dev_admin_key(tmp_path, loader, monkeypatch) -> None:
    monkeypatch.delenv("LLMOPS_ADMIN_KEY", raising=False)
    with app_client(tmp_path, loader, dev_mode=True) as c:
        assert c.get("/admin/models", headers={"x-api-key": DEV_ADMIN_KEY}).status_code == 200
        assert c.get("/admin/models", headers={"x-api-key": "other"}).status_code == 403


def test_paths_must_stay_under_the_models_root(client, tmp_path) -> None:
    root = tmp_path / "models"
    inside = adapter_dir(root / "loras" / "a")
    outside = adapter_dir(tmp_path / "elsewhere")
    os.symlink(outside, root / "link-out")
    os.symlink(inside, root / "link-in")
    h = {"x-api-key": KEY}

    def load(adapter_id: str, path: str):
        return client.post("/admin/adapters", json={"adapter_id": adapter_id, "path": path},
                           headers=h)

    for bad in (str(outside), str(root / "loras" / ".." / ".." / "elsewhere"), "../elsewhere",
                str(root / "link-out"), "link-out"):
        response = load("x", bad)
        assert response.status_code == 403, bad
        assert response.json()["error_type"] == "forbidden"
        assert "models root" in response.json()["error"]
    # Absolute, relative to the root, and a link that stays inside are all fine.
    assert load("a1", str(inside)).json()["path"] == str(inside)
    assert load("a2", "loras/a").json()["path"] == str(inside)
    assert load("a3", "link-in").json()["path"] == str(inside)
    model = client.post("/admin/models", json={"model_id": "m2", "path": str(outside)}, headers=h)
    assert model.status_code == 403
    sneaky = client.post("/admin/models", headers=h, json={
        "model_id": "m3", "path": str(inside), "gguf_file": "../../elsewhere/x.gguf"})
    assert sneaky.status_code == 422


@pytest.mark.parametrize(("route", "body"), [
    ("/generate", {"inputs": "q|a", "parameters": {"adapter_id": "nope"}}),
    ("/generate_stream", {"inputs": "q|a", "parameters": {"adapter_id": "nope"}}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "q|a"}], "model": "nope"}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "q|a"}], "model": "nope",
                              "stream": True}),
])
def test_unknown_model_or_adapter_is_a_404_not_the_base_model(client, route, body) -> None:
    response = client.post(route, json=body)
    assert response.status_code == 404
    text = response.text.removeprefix("data:").strip()
    assert text == '{"error":"model or adapter \'nope\' is not loaded","error_type":"not_found"}'


def test_chat_placeholder_and_default_id_get_the_default_model(client) -> None:
    for model in ("tgi", "dummy", "fake/model"):
        body = {"messages": [{"role": "user", "content": "q|yo"}], "model": model}
        chat = client.post("/v1/chat/completions", json=body).json()
        assert (chat["model"], chat["choices"][0]["message"]["content"]) == ("fake/model", "yo")
