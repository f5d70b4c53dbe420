"""TGI's HTTP routes: translate the request, run it on the batcher, translate the events back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from llmops_generation.api import responses
from llmops_generation.api.chat import ChatStreamText, chat_messages, chat_parameters
from llmops_generation.api.metrics import CONTENT_TYPE, Metrics, RequestTimer
from llmops_generation.api.schemas import ChatRequest, CompatGenerateRequest, GenerateRequest
from llmops_generation.domain.batcher import SequenceHandle
from llmops_generation.domain.errors import GenerationServiceError, Unhealthy
from llmops_generation.domain.model import Completion, ErrorEvent
from llmops_generation.domain.service import GenerationService, Target

router = APIRouter()
SSE = "text/event-stream"
# Chat `model` values that mean "the default model": what huggingface_hub sends when the caller
# names none ("dummy" with a base_url, "tgi" in older releases and TGI's own examples).
CHAT_PLACEHOLDERS = frozenset({"tgi", "dummy"})


def package_version() -> str:
    try:
        return version("llmops-generation")
    except PackageNotFoundError:
        return "0.0.0"


def _service(request: Request) -> GenerationService:
    service: GenerationService = request.app.state.service
    return service


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def error_response(exc: GenerationServiceError, *, stream: bool = False) -> Response:
    body = responses.error_body(exc)
    if stream:
        # The contract declares text/event-stream for /generate_stream errors: one error event.
        return Response(responses.sse(body), status_code=exc.http_status, media_type=SSE)
    return JSONResponse(body, status_code=exc.http_status)


# How often a non-streaming request checks that its client is still there.
DISCONNECT_POLL_SECONDS = 0.25
# nginx's "client closed request": nobody reads it, but logs and metrics show what happened.
CLIENT_CLOSED = 499


async def _collect(request: Request, handle: SequenceHandle, timer: RequestTimer
                   ) -> Completion | None:
    """The whole completion, or None when the client hung up first.

    A server does not cancel a plain (non-streaming) handler when its client goes away, so the
    sequence would keep its batch slot until max_new_tokens; a caller whose deadline passed
    (the inference service, any TGI client with a timeout) must free it at once.
    """
    task = asyncio.ensure_future(handle.collect())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                completion = task.result()
                break
            if await request.is_disconnected():
                timer.failed("client_closed")
                return None
    except GenerationServiceError as exc:
        timer.failed(exc.error_type)
        raise
    finally:
        task.cancel()
        handle.cancel()
    assert completion.finish is not None
    timer.succeeded(completion.finish.input_length, completion.finish.generated_tokens)
    return completion


def _start(request: Request, body: GenerateRequest, *, stream: bool) -> tuple[Target, SequenceHandle]:
    service = _service(request)
    target = service.resolve(body.parameters.adapter_id)
    input_ids = target.engine.codec.encode(body.inputs)
    return target, service.submit(target, input_ids, body.parameters.raw(), stream=stream)


async def _generate(request: Request, body: GenerateRequest, route: str) -> dict[str, Any] | None:
    timer = _metrics(request).track(route)
    try:
        _, handle = _start(request, body, stream=False)
    except GenerationServiceError as exc:
        timer.failed(exc.error_type)
        raise
    completion = await _collect(request, handle, timer)
    if completion is None:
        return None
    prefix = body.inputs if body.parameters.return_full_text else ""
    return responses.generate(completion, with_details=body.parameters.details, prefix=prefix)


def _error_event(event: ErrorEvent, timer: RequestTimer) -> str:
    """The SSE event that ends a stream whose generation failed after it started."""
    exc = event.error
    kind = exc.error_type if isinstance(exc, GenerationServiceError) else "generation"
    timer.failed(kind)
    return responses.sse({"error": str(exc), "error_type": kind})


async def _token_stream(
    body: GenerateRequest, handle: SequenceHandle, timer: RequestTimer
) -> AsyncIterator[str]:
    prefix = body.inputs if body.parameters.return_full_text else ""
    try:
        async for event in handle.events():
            if isinstance(event, ErrorEvent):
                yield _error_event(event, timer)
                return
            timer.first_token()
            yield responses.sse(
                responses.stream_event(event, with_details=body.parameters.details, prefix=prefix)
            )
            if event.finish is not None:
                timer.succeeded(event.finish.input_length, event.finish.generated_tokens)
    finally:
        # A client that hung up closes this generator; its sequence leaves the batch.
        handle.cancel()


async def _stream_response(
    request: Request, body: GenerateRequest, route: str, *, sse_errors: bool
) -> Response:
    timer = _metrics(request).track(route)
    try:
        _, handle = _start(request, body, stream=True)
    except GenerationServiceError as exc:
        timer.failed(exc.error_type)
        return error_response(exc, stream=sse_errors)
    return StreamingResponse(_token_stream(body, handle, timer), media_type=SSE)


@router.post("/generate")
async def generate(request: Request, body: GenerateRequest) -> Any:
    out = await _generate(request, body, "generate")
    return Response(status_code=CLIENT_CLOSED) if out is None else out


@router.post("/generate_stream")
async def generate_stream(request: Request, body: GenerateRequest) -> Response:
    return await _stream_response(request, body, "generate_stream", sse_errors=True)


@router.post("/")
async def compat_generate(request: Request, body: CompatGenerateRequest) -> Any:
    """TGI's compatibility route, which huggingface_hub's text_generation posts to."""
    if body.stream:
        return await _stream_response(request, body, "compat_generate", sse_errors=False)
    out = await _generate(request, body, "compat_generate")
    return Response(status_code=CLIENT_CLOSED) if out is None else [out]


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, body: ChatRequest) -> Any:
    service = _service(request)
    timer = _metrics(request).track("chat_completions")
    try:
        target = service.resolve(body.model, placeholders=CHAT_PLACEHOLDERS)
        prompt = target.engine.codec.render_chat(chat_messages(body))
        input_ids = target.engine.codec.encode(prompt, add_special_tokens=False)
        handle = service.submit(target, input_ids, chat_parameters(body), stream=body.stream)
    except GenerationServiceError as exc:
        timer.failed(exc.error_type)
        raise
    meta = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": target.name,
        "fingerprint": f"{package_version()}-llmops",
    }
    with_logprobs = bool(body.logprobs)
    if not body.stream:
        completion = await _collect(request, handle, timer)
        if completion is None:
            return Response(status_code=CLIENT_CLOSED)
        return responses.chat_completion(completion, logprobs=with_logprobs, **meta)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return StreamingResponse(
        _chat_stream(handle, timer, meta, tuple(body.stop or ()), with_logprobs, include_usage),
        media_type=SSE,
    )


async def _chat_stream(
    handle: SequenceHandle,
    timer: RequestTimer,
    meta: dict[str, Any],
    stops: tuple[str, ...],
    with_logprobs: bool,
    include_usage: bool,
) -> AsyncIterator[str]:
    text = ChatStreamText(stops)
    try:
        async for event in handle.events():
            if isinstance(event, ErrorEvent):
                yield _error_event(event, timer)
                return
            timer.first_token()
            logprobs = [responses.chat_logprob(event)] if with_logprobs else None
            yield responses.sse(responses.chat_chunk(content=text.push(event), logprobs=logprobs, **meta))
            finish = event.finish
            if finish is not None:
                timer.succeeded(finish.input_length, finish.generated_tokens)
                reason = responses.chat_finish_reason(finish)
                yield responses.sse(responses.chat_chunk(content="", finish_reason=reason, **meta))
                if include_usage:
                    usage = responses.usage(finish)
                    yield responses.sse(responses.chat_chunk(content=None, usage_=usage, **meta))
        yield responses.DONE
    finally:
        handle.cancel()


@router.post("/tokenize")
async def tokenize(request: Request, body: GenerateRequest) -> list[dict[str, Any]]:
    body.parameters.check_contract_bounds()
    target = _service(request).resolve(body.parameters.adapter_id)
    return [
        {"id": i, "text": text, "start": start, "stop": stop}
        for i, text, start, stop in target.engine.codec.tokenize(body.inputs)
    ]


def _weights(decoder: object) -> dict[str, Any] | None:
    weights = getattr(decoder, "weights", None)
    if weights is None:
        return None
    return {
        "file": weights.file_type,
        "served": weights.served,
        "reason": weights.reason,
        "extra_buffers": weights.extra_buffers,
        "extra_buffers_reason": weights.extra_buffers_reason,
    }


@router.get("/info")
async def info(request: Request) -> dict[str, Any]:
    service = _service(request)
    limits = service.limits
    engine = service.default
    return {
        "model_id": engine.model_id,
        "model_sha": None,
        "model_pipeline_tag": "text-generation",
        "model_dtype": engine.spec.dtype,
        # Not in TGI's Info: why this format (the CPU's capabilities, or who asked for it).
        "dtype_reason": engine.spec.dtype_reason,
        # Not in TGI's Info either: the setting, and which decode path actually serves.
        "fast_decode": request.app.state.settings.fast_decode,
        "decode_path": engine.decoder.decode_path,
        # Which engine serves the default model's base weights ("transformers" or "llamacpp").
        "engine": getattr(engine.decoder, "engine", "transformers"),
        # Whether the default model's engine reuses cached prompt prefixes (llama.cpp only).
        "prefix_cache": bool(getattr(engine.decoder, "prefix_cache", False)),
        # llama.cpp only: the GGUF file's weight type, the type served, and why (null otherwise).
        "llamacpp_weights": _weights(engine.decoder),
        "max_concurrent_requests": request.app.state.settings.max_concurrent_requests,
        "max_best_of": limits.max_best_of,
        "max_stop_sequences": limits.max_stop_sequences,
        "max_input_tokens": limits.max_input_tokens,
        "max_total_tokens": limits.max_total_tokens,
        "validation_workers": 1,
        "max_client_batch_size": 1,
        "router": "llmops-generation",
        "version": package_version(),
        "sha": None,
        "docker_label": None,
    }


@router.get("/health")
async def health(request: Request) -> Response:
    if not _service(request).healthy:
        raise Unhealthy("unhealthy")
    return Response(status_code=200)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(_metrics(request).render(), media_type=CONTENT_TYPE)
