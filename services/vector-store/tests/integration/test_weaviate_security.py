"""The local Weaviate (infra/scripts/weaviate.sh) refuses anonymous and wrong-key requests,
the adapter connects with the generated key, and nothing it listens on is reachable from
another host: REST and gRPC on 127.0.0.1, everything else inside a loopback-only namespace."""

from __future__ import annotations

import os
import stat
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from pydantic import SecretStr

from llmops_kit.settings import llmops_home
from llmops_vectorstore.adapters.weaviate_schema import WeaviateAuthError, connect
from llmops_vectorstore.settings import LocalWeaviate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def status_of(server: dict[str, Any], path: str, key: str | None) -> int:
    request = urllib.request.Request(f"http://{server['host']}:{server['http_port']}{path}")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_api_key_file_is_private(weaviate_server: dict[str, Any]) -> None:
    key_file: Path = weaviate_server["api_key_file"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) >= 32


def test_anonymous_and_wrong_key_requests_are_refused(weaviate_server: dict[str, Any]) -> None:
    key = weaviate_server["api_key_file"].read_text().strip()
    assert status_of(weaviate_server, "/v1/schema", None) == 401
    assert status_of(weaviate_server, "/v1/schema", "not-the-key") == 401
    assert status_of(weaviate_server, "/v1/schema", key + "x") == 401
    assert status_of(weaviate_server, "/v1/schema", key) == 200
    # Readiness stays open: the scripts and orchestrators probe it without a key.
    assert status_of(weaviate_server, "/v1/.well-known/ready", None) == 200


async def test_grpc_refuses_anonymous_and_wrong_key_requests(
    weaviate_server: dict[str, Any]
) -> None:
    # Weaviate's own gRPC API, called directly: the same key as REST, checked per call.
    from weaviate.proto.v1.v6300.v1 import search_get_pb2, weaviate_pb2_grpc

    key = weaviate_server["api_key_file"].read_text().strip()
    name = f"SecurityProbe{uuid.uuid4().hex[:8]}"
    client = await connect(LocalWeaviate(), timeout_seconds=10)
    await client.collections.create(name)
    try:
        async with grpc.aio.insecure_channel(
                f"{weaviate_server['host']}:{weaviate_server['grpc_port']}") as channel:
            stub = weaviate_pb2_grpc.WeaviateStub(channel)
            request = search_get_pb2.SearchRequest(collection=name, limit=1)
            for metadata in [(), (("authorization", "Bearer not-the-key"),)]:
                with pytest.raises(grpc.aio.AioRpcError, match="unauthorized"):
                    await stub.Search(request, metadata=metadata, timeout=10)
            reply = await stub.Search(request, metadata=(("authorization", f"Bearer {key}"),),
                                      timeout=10)
            assert list(reply.results) == []
    finally:
        await client.collections.delete(name)
        await client.close()


async def test_the_adapter_connects_with_the_key_and_not_without(
    weaviate_server: dict[str, Any], tmp_path: Path
) -> None:
    backend = LocalWeaviate()
    assert backend.api_key_file == weaviate_server["api_key_file"]
    client = await connect(backend, timeout_seconds=10)
    try:
        assert await client.is_ready()
        # An authenticated call, which anonymous access could not make.
        assert isinstance(await client.collections.list_all(simple=True), dict)
    finally:
        await client.close()

    # Refused at once (no retrying for the whole timeout), with what is wrong and no secret.
    with pytest.raises(WeaviateAuthError, match=r"\(401\): no API key") as anonymous:
        await connect(LocalWeaviate(api_key_file=tmp_path / "none"), timeout_seconds=60)
    with pytest.raises(WeaviateAuthError, match=r"\(401\): wrong API key") as wrong:
        await connect(LocalWeaviate(api_key=SecretStr("guessed")), timeout_seconds=60)
    assert "guessed" not in str(wrong.value) and anonymous.value.__cause__ is None


def _server_pids() -> tuple[int, int]:
    """(the process the pid file names, the weaviate-server process itself)."""
    pid = int((llmops_home() / "run" / "weaviate.pid").read_text().strip())
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if cmd and cmd[0].endswith(b"weaviate-server"):
        return pid, pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, f"launcher {pid} has children {children}"
    return pid, int(children[0])


def _listeners(pid: int) -> list[str]:
    """Local addresses of the TCP sockets `pid` listens on, in this network namespace."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


def test_every_listener_is_on_loopback(weaviate_server: dict[str, Any]) -> None:
    launcher, server = _server_pids()
    host_side = _listeners(launcher) + _listeners(server)
    assert f"127.0.0.1:{weaviate_server['http_port']}" in host_side
    assert all(addr.startswith("127.0.0.1:") for addr in host_side), host_side

    if server == launcher:  # no namespace: then every one of its ports must be on loopback
        return
    # In its own network namespace, the server's "every interface" is that namespace's
    # loopback: no other interface exists there to be reached through.
    assert os.readlink(f"/proc/{server}/ns/net") != os.readlink("/proc/self/ns/net")
    interfaces = [line.split(":")[0].strip()
                  for line in Path(f"/proc/{server}/net/dev").read_text().splitlines()[2:]]
    assert interfaces == ["lo"]
    # gRPC, like REST, is reachable only through the relay on the host's 127.0.0.1.
    assert f"127.0.0.1:{weaviate_server['grpc_port']}" in host_side
