"""Composition root: the model loader, the service holding the models, and the FastAPI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from llmops_generation.api import admin, http
from llmops_generation.api.metrics import Metrics
from llmops_generation.domain.errors import GenerationServiceError, ValidationError
from llmops_generation.domain.model import ModelSpec
from llmops_generation.domain.numerics import choose_format, read_cpu_flags
from llmops_generation.domain.service import BatchingConfig, GenerationService
from llmops_generation.domain.validation import Limits
from llmops_generation.ports import ModelLoader
from llmops_generation.settings import Settings

log = logging.getLogger(__name__)


def default_spec(settings: Settings, cpu_flags: frozenset[str]) -> ModelSpec:
    fmt = choose_format(settings.dtype, cpu_flags, source="setting LLMOPS_GENERATION_DTYPE")
    return ModelSpec(
        model_id=settings.model_id,
        path=settings.model_path,
        gguf_file=settings.gguf_file,
        dtype=fmt.dtype,
        dtype_reason=fmt.reason,
    )


def build_service(settings: Settings, loader: ModelLoader, metrics: Metrics) -> GenerationService:
    limits = Limits(
        max_input_tokens=settings.max_input_tokens,
        max_total_tokens=settings.max_total_tokens,
        default_max_new_tokens=settings.default_max_new_tokens,
        max_stop_sequences=settings.max_stop_sequences,
        max_top_n_tokens=settings.max_top_n_tokens,
    )
    batching = BatchingConfig(
        max_batch_size=settings.max_batch_size,
        max_prefill_tokens=settings.max_batch_prefill_tokens,
        max_waiting=settings.max_concurrent_requests,
    )
    return GenerationService(loader, limits, batching, observer_for=metrics.observer)


def torch_threads(settings: Settings, loader: ModelLoader) -> int | None:
    """TORCH_THREADS, or 1 when llama.cpp serves the default model (None: torch's default).

    With llama.cpp computing, torch only samples; at 8 rows its OpenMP team parallelises the
    log-softmax and then spins, taking the cores from llama.cpp's own threads: 8 streams went
    from 72 to 156 tokens/s on 2 cores with one torch thread. Models served by transformers in
    the same server (LoRA rows, full-model versions) then run on one torch thread too.
    """
    if settings.torch_threads:
        return settings.torch_threads
    return 1 if getattr(loader, "engine", None) == "llamacpp" else None


def engine_loader(settings: Settings) -> ModelLoader:
    """The loader for LLMOPS_GENERATION_ENGINE (llama.cpp is imported only when it serves)."""
    from llmops_generation.adapters.llamacpp_loader import EngineLoader, LlamaCppConfig
    from llmops_generation.adapters.loader import TransformersLoader

    config = LlamaCppConfig(
        slots=settings.max_batch_size,
        ctx_per_slot=settings.max_total_tokens,
        n_batch=settings.llamacpp_batch_tokens,
        threads=settings.llamacpp_threads,
        threads_batch=settings.llamacpp_threads_batch,
        prefix_cache=settings.prefix_cache,
        flash_attn={"auto": None, "on": True, "off": False}[settings.llamacpp_flash_attn],
        weights=settings.llamacpp_weights,
        extra_buffers=settings.llamacpp_extra_buffers,
    )
    transformers = TransformersLoader(settings.models_dir, fast_decode=settings.fast_decode)
    return EngineLoader(transformers, settings.engine, config)


def _describe(errors: Sequence[Any]) -> str:
    if not errors:
        return "invalid request"
    first = errors[0]
    parts = list(first.get("loc", ()))
    # ("body", ...) is FastAPI's prefix; ("body", 0) is where a JSON decode error sits.
    while parts and (parts[0] == "body" or isinstance(parts[0], int)):
        parts.pop(0)
    loc = ".".join(str(part) for part in parts)
    return f"{loc}: {first.get('msg', 'invalid')}" if loc else str(first.get("msg", "invalid"))


def build_app(
    settings: Settings, loader: ModelLoader | None = None, cpu_flags: frozenset[str] | None = None
) -> FastAPI:
    """The app; the default model loads in its lifespan (uvicorn accepts requests after that).

    `cpu_flags` (read from /proc/cpuinfo when None) decide the numeric format of "auto".
    """
    if cpu_flags is None:
        cpu_flags = read_cpu_flags()
    if loader is None:
        loader = engine_loader(settings)
    metrics = Metrics()
    service = build_service(settings, loader, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threads = torch_threads(settings, loader)
        if threads:
            import torch

            torch.set_num_threads(threads)
        await service.load_model(default_spec(settings, cpu_flags), default=True)
        log.info("generation server ready", extra={"host": settings.host, "port": settings.port})
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(title="llmops generation (TGI API)", version=http.package_version(), lifespan=lifespan)
    app.state.settings = settings
    app.state.cpu_flags = cpu_flags
    app.state.service = service
    app.state.metrics = metrics
    app.include_router(http.router)
    app.include_router(admin.router)

    def _is_stream(request: Request) -> bool:
        return request.url.path == "/generate_stream"

    @app.exception_handler(GenerationServiceError)
    async def _service_error(request: Request, exc: GenerationServiceError) -> Response:
        return http.error_response(exc, stream=_is_stream(request))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return http.error_response(ValidationError(_describe(exc.errors())), stream=_is_stream(request))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 400:
            # A body that is not JSON at all: TGI answers that with its 422 validation shape.
            return http.error_response(ValidationError(str(exc.detail)), stream=_is_stream(request))
        return JSONResponse(
            {"error": str(exc.detail), "error_type": "http"}, status_code=exc.status_code, headers=exc.headers
        )

    return app


def serve(settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the JSON logging configured in main()
        access_log=False,
        timeout_graceful_shutdown=30,
    )
