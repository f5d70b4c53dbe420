"""An expensive render over the real gRPC socket: a clear error within a second, while the
service keeps answering other calls."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from llmops.registry.v1 import registry_pb2 as pb
from llmops_kit.testing import error_reason

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ACME = (("x-api-key", "dev-key-acme"),)
# Passes every static check (its size comes from a variable): only the worker's kill stops it.
SLOW = "{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}"


async def test_literal_blowup_is_refused_at_creation(running, unique) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await running.stub.CreatePromptVersion(pb.CreatePromptVersionRequest(
            name=f"bomb-{unique}", template='{{ "%0999999999d" % 1 }}'), metadata=ACME)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(info.value) == "TEMPLATE_TOO_EXPENSIVE"


async def test_slow_render_is_stopped_and_other_calls_answer_meanwhile(running, unique) -> None:
    stub, name = running.stub, f"slow-{unique}"
    await stub.CreatePromptVersion(pb.CreatePromptVersionRequest(
        name=name, template=SLOW, labels=["production"]), metadata=ACME)
    await stub.RenderPrompt(pb.RenderPromptRequest(name=name, variables={"s": "ab"}),
                            metadata=ACME)  # warm: the first render starts a worker process

    started = time.monotonic()
    slow = asyncio.ensure_future(stub.RenderPrompt(pb.RenderPromptRequest(
        name=name, variables={"s": "y" * 5000}), metadata=ACME))
    await asyncio.sleep(0.1)
    assert not slow.done()
    quick_start = time.monotonic()
    got = await stub.GetPromptVersion(pb.GetPromptVersionRequest(name=name, version=1),
                                      metadata=ACME)
    quick = time.monotonic() - quick_start
    assert got.template == SLOW and quick < 0.3

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await slow
    took = time.monotonic() - started
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(info.value) == "TEMPLATE_TOO_EXPENSIVE"
    assert took < 1.0
    again = await stub.RenderPrompt(pb.RenderPromptRequest(name=name, variables={"s": "ab"}),
                                    metadata=ACME)
    assert again.text == ""
