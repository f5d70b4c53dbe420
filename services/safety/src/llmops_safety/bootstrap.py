"""Composition root: loads the toxicity model, builds the bus, the publisher and gRPC."""

from __future__ import annotations

import asyncio
import logging

from llmops.safety.v1 import safety_pb2_grpc
from llmops_kit import events
from llmops_kit.app import ServiceApp, Stage
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus
from llmops_kit.key_resolver import build_resolver
from llmops_safety.adapters.toxicity import load_toxicity_model
from llmops_safety.api.events import BackgroundPublisher
from llmops_safety.api.grpc import ROLES, SERVICE_FULL_NAME, SafetyServicer
from llmops_safety.domain.engine import SafetyEngine
from llmops_safety.domain.service import SafetyService
from llmops_safety.ports import InjectionClassifier
from llmops_safety.settings import InjectionModelSettings, Settings

log = logging.getLogger(__name__)

TOPICS = (events.SAFETY_VERDICT_ISSUED.topic,)


def build_service(settings: Settings, engine: SafetyEngine,
                  publisher: BackgroundPublisher) -> SafetyService:
    return SafetyService(engine, settings.policies.book(), publisher,
                         max_text_chars=settings.max_text_chars,
                         excerpt_chars=settings.event_excerpt_chars)


def build_grpc(settings: Settings, service: SafetyService,
               publisher: BackgroundPublisher | None = None) -> GrpcServer:
    server = GrpcServer(settings.grpc_host, settings.grpc_port, build_resolver(settings))
    stats = publisher.stats if publisher is not None else None
    server.add(safety_pb2_grpc.add_SafetyServiceServicer_to_server,
               SafetyServicer(service, stats), [SERVICE_FULL_NAME], ROLES)
    return server


def build_publisher(settings: Settings, bus: EventBus) -> BackgroundPublisher:
    return BackgroundPublisher(bus, timeout=settings.events_publish_timeout_seconds,
                               max_in_flight=settings.events_max_in_flight)


def load_injection_model(settings: InjectionModelSettings) -> InjectionClassifier | None:
    if not settings.enabled:
        log.info("learned prompt-injection detector disabled: rules only")
        return None
    from llmops_safety.adapters.injection_model import UseInjectionClassifier

    model = UseInjectionClassifier.load(settings.head)
    log.info("prompt-injection detector: rules + %s (%s)", model.name, model.detail)
    return model


def build_engine(settings: Settings) -> SafetyEngine:
    """Loads the models (blocking: call off the event loop)."""
    return SafetyEngine(load_toxicity_model(settings.detoxify),
                        injection_model=load_injection_model(settings.injection_model),
                        injection_threshold=settings.injection_model.threshold)


async def build(settings: Settings) -> ServiceApp:
    engine = await asyncio.to_thread(build_engine, settings)
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    publisher = build_publisher(settings, bus)
    service = build_service(settings, engine, publisher)
    app = ServiceApp(settings, bus, build_grpc(settings, service, publisher), TOPICS)
    # Verdict events still in flight land before the bus stops (gRPC has stopped by then).
    app.on(Stage.BUS_CLIENT, stop=publisher.drain)
    return app


async def serve(settings: Settings) -> None:
    await (await build(settings)).serve()
