"""Test helpers for the CLI (imported by tests only; needs pytest): a fake gRPC service on a
real socket, and running `llmops`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
import pytest

from llmops_cli.main import main


@contextmanager
def fake_service(add: Callable[[Any, grpc.Server], None], servicer: Any, address_variable: str,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Serves `servicer` on a free port, points the CLI at it, with tenant acme's key k-acme
    (development mode, where the CLI picks a tenant's key from LLMOPS_API_KEYS)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv(address_variable, f"127.0.0.1:{port}")
    monkeypatch.setenv("LLMOPS_DEV_MODE", "true")
    monkeypatch.setenv("LLMOPS_API_KEYS", "k-acme=acme")
    for name in ("LLMOPS_API_KEY", "LLMOPS_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield
    finally:
        server.stop(None)


def run(argv: list[str]) -> int:
    """`llmops ARGV`; returns its exit code."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    return int(exit_.value.code or 0)
