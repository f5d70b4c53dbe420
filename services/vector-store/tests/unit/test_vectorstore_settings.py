"""Settings: the Weaviate backend union, env overrides; and Weaviate name mapping."""

from __future__ import annotations

import uuid

import pytest

from llmops_vectorstore.adapters.weaviate_schema import chunk_uuid, tenant_name
from llmops_vectorstore.settings import LocalWeaviate, RemoteWeaviate, Settings

pytestmark = pytest.mark.unit


def test_defaults():
    settings = Settings()
    assert settings.service_name == "vector-store" and settings.grpc_port == 7063
    assert settings.weaviate == LocalWeaviate()
    assert (settings.weaviate.http_port, settings.weaviate.grpc_port) == (8080, 8081)
    assert settings.collection == "LlmopsChunk"
    assert settings.embedding.address == "127.0.0.1:7062"
    assert (settings.consumer_group, settings.deletes_consumer_group) == (
        "vector-store", "vector-store-deletes"
    )


def test_remote_backend_from_env(monkeypatch):
    monkeypatch.setenv("LLMOPS_VECTORSTORE_WEAVIATE__KIND", "remote")
    monkeypatch.setenv("LLMOPS_VECTORSTORE_WEAVIATE__HTTP_HOST", "weaviate.example")
    monkeypatch.setenv("LLMOPS_VECTORSTORE_WEAVIATE__GRPC_HOST", "grpc.weaviate.example")
    monkeypatch.setenv("LLMOPS_VECTORSTORE_WEAVIATE__API_KEY", "s3cret")
    backend = Settings().weaviate
    assert isinstance(backend, RemoteWeaviate)
    assert (backend.http_host, backend.grpc_host, backend.http_secure) == (
        "weaviate.example", "grpc.weaviate.example", True
    )
    assert backend.api_key is not None and backend.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(backend)


def test_remote_without_hosts_fails_naming_the_field(monkeypatch):
    monkeypatch.setenv("LLMOPS_VECTORSTORE_WEAVIATE__KIND", "remote")
    with pytest.raises(ValueError, match="http_host"):
        Settings()


def test_tenant_names_are_valid_for_weaviate_and_stable():
    assert tenant_name("acme") == "acme"
    odd = tenant_name("Acme Corp/EU")
    assert odd == tenant_name("Acme Corp/EU") and odd != tenant_name("Acme Corp/US")
    assert odd.startswith("h-") and len(odd) <= 64 and odd.replace("-", "").isalnum()
    assert tenant_name("x" * 65) != "x" * 65


def test_chunk_uuid():
    u = uuid.uuid4()
    assert chunk_uuid(str(u)) == u
    assert chunk_uuid("doc/1/0") == chunk_uuid("doc/1/0") != chunk_uuid("doc/1/1")


def test_local_backend_reads_the_generated_key_file(tmp_path, monkeypatch):
    # weaviate.sh writes $LLMOPS_HOME/secrets/weaviate.key; the settings find it by default.
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    backend = Settings().weaviate
    assert isinstance(backend, LocalWeaviate)
    assert backend.api_key_file == tmp_path / "secrets" / "weaviate.key"
    assert backend.credentials() is None  # no file yet: anonymous, as against an older server
    backend.api_key_file.parent.mkdir()
    backend.api_key_file.write_text("k3y-from-file\n")
    key = backend.credentials()
    assert key is not None and key.get_secret_value() == "k3y-from-file"
    assert "k3y" not in repr(backend)


def test_local_backend_key_from_env_wins_over_the_file(tmp_path, monkeypatch):
    (tmp_path / "file.key").write_text("from-file")
    monkeypatch.setenv("LLMOPS_VECTORSTORE_WEAVIATE__KIND", "local")
    monkeypatch.setenv("LLMOPS_VECTORSTORE_WEAVIATE__API_KEY_FILE", str(tmp_path / "file.key"))
    assert Settings().weaviate.credentials().get_secret_value() == "from-file"
    monkeypatch.setenv("LLMOPS_VECTORSTORE_WEAVIATE__API_KEY", "from-env")
    assert Settings().weaviate.credentials().get_secret_value() == "from-env"
    (tmp_path / "file.key").write_text("")
    monkeypatch.delenv("LLMOPS_VECTORSTORE_WEAVIATE__API_KEY")
    with pytest.raises(ValueError, match=r"weaviate api_key_file: .*file\.key is empty"):
        Settings().weaviate.credentials()


def test_local_backend_follows_the_scripts_key_file_variable(tmp_path, monkeypatch):
    # weaviate.sh reads WEAVIATE_API_KEY_FILE; the settings' default is the same file.
    monkeypatch.setenv("WEAVIATE_API_KEY_FILE", str(tmp_path / "elsewhere.key"))
    assert Settings().weaviate.api_key_file == tmp_path / "elsewhere.key"
