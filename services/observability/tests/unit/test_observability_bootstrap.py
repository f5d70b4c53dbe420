"""The drift monitor's hook: started after the bus, publishing DriftDetected, cancelled on stop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmops.observability.v1 import observability_pb2
from llmops_kit import events
from llmops_kit.app import Stage
from llmops_observability.bootstrap import drift_publisher, wire_drift

pytestmark = pytest.mark.unit


@dataclass
class FakeApp:
    hooks: list[tuple[Stage, Any, Any]] = field(default_factory=list)

    def on(self, stage: Stage, *, start: Any = None, stop: Any = None) -> None:
        self.hooks.append((stage, start, stop))


@dataclass
class FakeBus:
    published: list[tuple[str, Any, bytes]] = field(default_factory=list)

    async def publish(self, event_type: Any, event: Any, key: bytes) -> None:
        self.published.append((event_type.topic, event, key))


async def test_the_drift_monitor_runs_beside_the_consumers() -> None:
    ran = asyncio.Event()
    cancelled: list[bool] = []

    class DriftMonitor:
        def __init__(self, client: Any, publish: Any, settings: Any) -> None:
            self.publish, self.settings = publish, settings

        async def run_forever(self) -> None:
            await self.publish(observability_pb2.DriftDetected(
                envelope=events.make_envelope("observability", tenant="acme")))
            ran.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

    app, bus = FakeApp(), FakeBus()
    wire_drift(app, DriftMonitor(None, drift_publisher(bus), "settings"))  # type: ignore[arg-type]
    [(stage, start, stop)] = app.hooks
    assert stage is Stage.BUS_CLIENT
    await start()
    await asyncio.wait_for(ran.wait(), 5)
    await stop()
    assert cancelled == [True]
    assert [(t, k) for t, _, k in bus.published] == [(events.DRIFT_DETECTED.topic, b"acme")]

