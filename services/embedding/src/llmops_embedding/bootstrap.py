"""Composition root: builds the model, the bus and the gRPC server, and wires them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from llmops.embedding.v1 import embedding_pb2_grpc
from llmops_embedding.api import events as event_api
from llmops_embedding.api.grpc import ROLES, SERVICE_FULL_NAME, EmbeddingServicer
from llmops_embedding.api.metrics import record_backend
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_embedding.models import has_backends, load_embedder
from llmops_embedding.ports import Embedder
from llmops_embedding.settings import Settings
from llmops_kit import events
from llmops_kit.app import ServiceApp, Stage
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus
from llmops_kit.key_resolver import build_resolver

log = logging.getLogger(__name__)

TOPICS = (events.CHUNKS_CREATED.topic, events.CHUNK_VECTORS.topic)


def build_grpc(settings: Settings, service: EmbeddingService) -> GrpcServer:
    server = GrpcServer(settings.grpc_host, settings.grpc_port, build_resolver(settings))
    server.add(
        embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server,
        EmbeddingServicer(service),
        [SERVICE_FULL_NAME],
        ROLES,
    )
    return server


def _record(embedder: Embedder) -> None:
    report = getattr(embedder, "report", None)
    if report is not None:  # sentence-transformers models: which backend serves, and why
        record_backend(report)


async def build(settings: Settings) -> ServiceApp:
    first, *others = settings.encoders()
    later = first.select_in_background and has_backends(first)
    # Deferred: PyTorch serves at once; the asked-for backend takes over once it passed.
    default = await load_embedder(first.model_copy(update={"backend": "torch"}) if later
                                  else first)
    if later:  # says what it waits for (GetModelInfo.backend, the metric's `requested`)
        default.report = replace(  # type: ignore[attr-defined]
            default.report, requested=first.backend, pending=True)
    extra = [await load_embedder(encoder) for encoder in others]
    _record(default)
    service = EmbeddingService(default, extra)
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    handler = event_api.EmbeddingHandlers(service, bus)
    event_api.register(bus, handler, settings.consumer_group, settings.max_records)
    app = ServiceApp(settings, bus, build_grpc(settings, service), TOPICS)
    if later:
        selection = BackgroundSelection(service, lambda: _selected(default, first.backend))
        app.on(Stage.RESOURCE, start=selection.start, stop=selection.stop)
    return app


def _selected(base: Embedder, backend: str) -> Embedder:
    from llmops_embedding.adapters.encoders import choose_backend
    from llmops_embedding.adapters.sentence_transformers import SentenceTransformerEmbedder

    if not isinstance(base, SentenceTransformerEmbedder):
        raise TypeError(f"{type(base).__name__} has no backends to choose from")
    return choose_backend(base.with_backend(backend))


class BackgroundSelection:
    """Runs `select` (export and check the asked-for backend; blocking) in a daemon thread
    while PyTorch serves, then hands the default model over to what it chose (the backend, or
    PyTorch with the reason). A daemon thread: stopping the service never waits for an export
    (an interrupted export leaves no cache entry: it is written aside and renamed)."""

    def __init__(self, service: EmbeddingService, select: Callable[[], Embedder]) -> None:
        self.service = service
        self.select = select
        self.done: asyncio.Future[Embedder | None] | None = None
        self._stopped = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()

        def work() -> None:
            try:
                chosen, error = self.select(), None
            except Exception as err:
                chosen, error = None, err
            with contextlib.suppress(RuntimeError):  # the loop closed: the service stopped
                loop.call_soon_threadsafe(self._finish, chosen, error)

        threading.Thread(target=work, name="embedding-backend-selection", daemon=True).start()

    def _finish(self, chosen: Embedder | None, error: Exception | None) -> None:
        if self._stopped or self.done is None or self.done.done():
            return
        if chosen is None:  # the service keeps serving with PyTorch; nothing vanishes silently
            log.error("embedding backend selection failed; serving with PyTorch",
                      exc_info=error)
        else:
            self.service.replace_default(chosen)
            _record(chosen)
            log.info("embedding backend in service: %s", chosen.backend)
        self.done.set_result(chosen)

    async def stop(self) -> None:
        self._stopped = True
        if self.done is not None and not self.done.done():
            self.done.cancel()


async def serve(settings: Settings) -> None:
    await (await build(settings)).serve()
