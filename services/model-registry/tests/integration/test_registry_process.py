"""`python -m llmops_registry` as a process: env settings, seeding once, SIGTERM drains."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmops.registry.v1 import registry_pb2 as pb
from llmops.registry.v1 import registry_pb2_grpc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ACME = (("x-api-key", "dev-key-acme"),)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_serving(address: str, proc: asyncio.subprocess.Process, log: Path,
                       timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            assert proc.returncode is None, f"registry exited: {tail(log)}"
            try:
                status = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if status.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            assert asyncio.get_running_loop().time() < deadline, "registry did not become healthy"
            await asyncio.sleep(0.2)


async def run_once(env: dict[str, str], address: str, log: Path) -> list[int]:
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "llmops_registry",
                                                    env=env, stdout=out, stderr=out)
    try:
        await wait_serving(address, proc, log)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = registry_pb2_grpc.ModelRegistryServiceStub(channel)
            name = env["LLMOPS_REGISTRY_SEED_MODEL__NAME"]
            page = await stub.ListModelVersions(pb.ListModelVersionsRequest(name=name),
                                                metadata=ACME)
            prod = await stub.GetModelVersion(pb.GetModelVersionRequest(name=name,
                                                                        alias="production"),
                                              metadata=ACME)
            assert prod.version == 1 and prod.created_by == "system"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0, tail(log)
    return [v.version for v in page.versions]


async def test_process_seeds_once_and_stops_on_sigterm(kafka, unique, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "LLMOPS_REGISTRY_GRPC_PORT": str(port),
        "LLMOPS_REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path}/registry.db",
        # A model nobody follows, and no prompt: this run publishes to the platform's topics.
        "LLMOPS_REGISTRY_SEED_MODEL__NAME": f"proc-test-{unique}",
        "LLMOPS_REGISTRY_SEED_RAG_PROMPT": "false",
        "LLMOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
    }
    address = f"127.0.0.1:{port}"
    log = tmp_path / "registry.log"
    assert await run_once(env, address, log) == [1]
    assert await run_once(env, address, log) == [1]  # the restart registered nothing new
