"""ServiceApp: the order of start/stop work and gRPC health following the consumers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmops_kit import app as app_module
from llmops_kit import kafka as kafka_module
from llmops_kit.app import ServiceApp, Stage
from llmops_kit.kafka import EventBus
from llmops_kit.settings import KafkaSettings, ServiceSettings

pytestmark = pytest.mark.unit


class FakeGrpc:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.port: int | None = None
        self.serving: list[bool] = []

    async def start_auth(self) -> None:
        self.log.append("keys")

    async def start(self) -> int:
        self.log.append("grpc.start")
        self.port = 1
        return 1

    async def stop(self, grace: float) -> None:
        self.log.append("grpc.stop")

    async def set_serving(self, serving: bool) -> None:
        self.serving.append(serving)


class FakeBus(EventBus):
    def __init__(self, log: list[str]) -> None:
        super().__init__(KafkaSettings(), client_id="t")
        self.log = log

    async def start(self) -> None:
        self.log.append("bus.start")

    async def stop(self) -> None:
        self.log.append("bus.stop")


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> tuple[ServiceApp, list[str], FakeGrpc]:
    log: list[str] = []

    async def no_topics(*_: Any) -> None:
        log.append("topics")

    monkeypatch.setattr(app_module, "ensure_topics", no_topics)
    grpc = FakeGrpc(log)
    return ServiceApp(ServiceSettings(), FakeBus(log), grpc, ()), log, grpc  # type: ignore[arg-type]


def _step(log: list[str], name: str) -> Any:
    async def step() -> None:
        log.append(name)
    return step


async def test_hooks_run_around_the_bus_in_their_stage(app: Any) -> None:
    service, log, _ = app
    service.on(Stage.RESOURCE, start=_step(log, "db.open"), stop=_step(log, "db.close"))
    service.on(Stage.RESOURCE, stop=_step(log, "model.close"))
    service.on(Stage.BUS_CLIENT, start=_step(log, "relay.start"), stop=_step(log, "relay.stop"))
    service.on(Stage.BUS_CLIENT, stop=_step(log, "publisher.drain"))
    await service.start()
    await service.stop()
    assert log == [
        "keys", "topics", "db.open", "bus.start", "relay.start", "grpc.start",
        "grpc.stop", "publisher.drain", "relay.stop", "bus.stop", "model.close", "db.close",
    ]


async def test_a_failing_stop_step_does_not_keep_the_others_from_running(app: Any) -> None:
    service, log, _ = app

    async def boom() -> None:
        raise RuntimeError("close failed")

    service.on(Stage.RESOURCE, stop=_step(log, "first.close"))
    service.on(Stage.RESOURCE, stop=boom)
    await service.start()
    await service.stop()
    assert log[-2:] == ["bus.stop", "first.close"]


async def test_grpc_health_follows_the_consumers_until_stopping(app: Any) -> None:
    service, _, grpc = app
    await service.start()
    await service.bus.report("g1", healthy=False)
    await service.bus.report("g2", healthy=False)
    await service.bus.report("g1", healthy=True)  # g2 still retrying through an outage
    await service.bus.report("g2", healthy=True)
    assert grpc.serving == [False, True]
    await service.stop()
    await service.bus.report("g1", healthy=False)
    await service.bus.report("g1", healthy=True)
    assert grpc.serving == [False, True]  # nothing flips readiness back on while stopping



async def test_readiness_follows_a_dependency_probe_with_no_record_in_flight(
        app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_module, "PROBE_INTERVAL_SECONDS", 0.01)
    service, _, grpc = app
    bus = service.bus
    up = True

    async def probe() -> bool:
        return up

    async def nothing() -> None:
        return None

    monkeypatch.setattr(bus.broker, "start", nothing)
    monkeypatch.setattr(bus.broker, "stop", nothing)
    bus.add_health_probe(probe)
    grpc.port = 1
    await EventBus.start(bus)  # the real start: it polls the probes in the background
    try:
        for want in (False, True, False):
            up = want
            for _ in range(300):
                if grpc.serving and grpc.serving[-1] is want:
                    break
                await asyncio.sleep(0.01)
            assert grpc.serving[-1] is want
    finally:
        await EventBus.stop(bus)
    assert bus._watcher is None
