"""Generation through huggingface_hub's AsyncInferenceClient against TGI's Messages API.

The same code talks to the project's local generation server, a TGI server, or anything that
speaks TGI's API (vLLM, SGLang, llama.cpp). LoRA adapters are selected TGI's way: the chat
request's `model` field names the adapter.

The version reported for an answer is the one the server says served it (the response's
`model`). A 404 for an adapter (the server restarted and lost what was loaded at run time)
loads the adapter again and retries once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub import AsyncInferenceClient
from huggingface_hub.errors import HfHubHTTPError

from llmops_inference.domain.model import Generation, ModelRef, RenderedPrompt
from llmops_kit.context import time_left
from llmops_kit.errors import FailedPrecondition, InvalidArgument, Unavailable

log = logging.getLogger(__name__)

ADMIN_KEY_HEADER = "x-api-key"


class _ModelGone(Exception):
    """The backend answered 404: it does not serve the model the request named."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def served_version(model: ModelRef, served_by: str | None) -> str:
    """The version label to report: `model`'s, unless the server says something else served.

    A base-model version is sent without a model name, so any name the server reports is its
    base model, which is that version. An adapter version is confirmed by its adapter id.
    """
    if not model.adapter_id or not served_by or served_by == model.adapter_id:
        return model.label
    log.warning("asked for %s (%s), the server says %s served it",
                model.label, model.adapter_id, served_by)
    return served_by


def _messages(prompt: RenderedPrompt) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": prompt.system}] if prompt.system else []
    return [*msgs, {"role": "user", "content": prompt.user}]


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


class TgiGenerator:
    def __init__(self, url: str, timeout_seconds: float, attempts: int, backoff_seconds: float,
                 token: str | None = None, admin_key: str | None = None,
                 stop: tuple[str, ...] = ()) -> None:
        self.url = url.rstrip("/")
        # Stop sequences sent with every request (TGI's `stop`): where a small model starts
        # a new turn of the prompt's pattern instead of ending its answer.
        self.stop = stop
        self.attempts = attempts
        self.backoff = backoff_seconds
        self.timeout = timeout_seconds
        self.client = AsyncInferenceClient(base_url=self.url, timeout=timeout_seconds,
                                           api_key=token or "-")
        self.adapters = AdapterLoader(self.url, timeout_seconds, token, admin_key)

    async def prepare(self, model: ModelRef) -> None:
        await self.adapters.prepare(model)

    def _kwargs(self, model: ModelRef, max_new_tokens: int, temperature: float | None,
                seed: int | None) -> dict[str, Any]:
        kw: dict[str, Any] = {"max_tokens": max_new_tokens, "seed": seed}
        if temperature is not None and temperature > 0:
            kw["temperature"] = temperature
        else:
            kw["temperature"] = 0.0
        if model.adapter_id:
            kw["model"] = model.adapter_id
        if self.stop:
            kw["stop"] = list(self.stop)
        return kw

    async def _retrying(self, call: Any) -> Any:
        """Calls with retries and backoff, each attempt bounded by the caller's deadline."""
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            budget = time_left(self.timeout)  # DeadlineExceeded once the caller gave up
            try:
                async with asyncio.timeout(budget):
                    return await call()
            except HfHubHTTPError as exc:
                status = _status(exc)
                if status == 404:
                    raise _ModelGone(str(exc)[:500]) from exc
                if status is not None and 400 <= status < 500:
                    # The backend refused the request itself (e.g. prompt too long): no retry.
                    raise InvalidArgument("GENERATION_REJECTED", str(exc)[:500]) from exc
                last: BaseException = exc
            except (TimeoutError, OSError, Exception) as exc:  # connection refused, ...
                last = exc
            if attempt < self.attempts:
                if time_left(self.timeout) <= delay:
                    break  # the caller's deadline leaves no room for another attempt
                log.warning("generation backend failed (attempt %d/%d), retrying in %.1fs: %s",
                            attempt, self.attempts, delay, last)
                await asyncio.sleep(delay)
                delay *= 2
        raise Unavailable("GENERATION_UNAVAILABLE",
                          f"generation backend {self.url} failed after {attempt} attempt(s): {last}")

    async def _served(self, model: ModelRef, call: Any) -> Any:
        """`_retrying(call)`; after a 404 for a run-time adapter (the server restarted), the
        adapter is loaded again and the call retried once."""
        try:
            return await self._retrying(call)
        except _ModelGone as gone:
            if not (model.adapter_id and model.artifact_uri and self.adapters.supported):
                raise self._not_served(model, gone) from gone
            log.warning("generation server lost %s (restarted?); loading it again",
                        model.adapter_id)
            self.adapters.forget()
            await self.adapters.prepare(model)
            try:
                return await self._retrying(call)
            except _ModelGone as again:
                raise self._not_served(model, again) from again

    @staticmethod
    def _not_served(model: ModelRef, gone: _ModelGone) -> FailedPrecondition:
        return FailedPrecondition(
            "ADAPTER_NOT_SERVED",
            f"the generation server does not serve {model.adapter_id} ({model.label}): "
            f"{gone.detail}")

    async def generate(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                       temperature: float | None, seed: int | None) -> Generation:
        kw = self._kwargs(model, max_new_tokens, temperature, seed)
        out = await self._served(model, lambda: self.client.chat_completion(
            _messages(prompt), **kw))
        choice = out.choices[0]
        usage = out.usage
        return Generation(
            text=choice.message.content or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            finish_reason=str(choice.finish_reason or ""),
            model_version=served_version(model, getattr(out, "model", None)),
        )

    async def stream(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                     temperature: float | None, seed: int | None
                     ) -> AsyncIterator[str | Generation]:
        kw = self._kwargs(model, max_new_tokens, temperature, seed)
        # Retries only cover opening the stream; once tokens flowed, a failure is the caller's.
        kw["stream_options"] = {"include_usage": True}
        chunks = await self._served(model, lambda: self.client.chat_completion(
            _messages(prompt), stream=True, **kw))
        parts: list[str] = []
        finish = ""
        served_by: str | None = None
        prompt_tokens = completion_tokens = 0
        async for chunk in chunks:
            served_by = served_by or getattr(chunk, "model", None)
            if chunk.choices:
                delta = chunk.choices[0].delta.content or ""
                if chunk.choices[0].finish_reason:
                    finish = str(chunk.choices[0].finish_reason)
                if delta:
                    parts.append(delta)
                    completion_tokens += 1
                    yield delta
            usage = getattr(chunk, "usage", None)
            if usage:
                prompt_tokens = int(usage.prompt_tokens or 0)
                completion_tokens = int(usage.completion_tokens or completion_tokens)
        yield Generation("".join(parts), prompt_tokens, completion_tokens, finish,
                         served_version(model, served_by))

    async def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            await close()
        await self.adapters.close()


def local_path(uri: str) -> str:
    """The folder an artifact URI names on this machine: file:///x is /x; pkg://package/sub is
    `sub` inside the installed Python package (the generation server must run where inference
    does, and that folder must lie under its models root)."""
    if uri.startswith("pkg://"):
        package, _, sub = uri.removeprefix("pkg://").partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FailedPrecondition("MODEL_NOT_SERVED",
                                     f"artifact {uri}: package {package!r} is not installed")
        return str(Path(next(iter(spec.submodule_search_locations))) / sub)
    return uri.removeprefix("file://")


class AdapterLoader:
    """Loads a LoRA version's adapter, or a full-model (`hf`) version, into the project's
    generation server on first use (POST /admin/adapters, /admin/models).

    A registry alias moved to a `peft-lora` version is served at once: the first request for it
    posts the artifact to the server's /admin/adapters, later ones find it loaded. A TGI, vLLM or
    other backend without that route is expected to have its adapters configured at its start
    (TGI's LORA_ADAPTERS); the loader notices the missing route once and stops trying. The admin
    routes need the platform admin key (sent as `x-api-key`).
    """

    def __init__(self, url: str, timeout_seconds: float, token: str | None = None,
                 admin_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if admin_key:
            headers[ADMIN_KEY_HEADER] = admin_key
        self.http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_seconds,
                                      headers=headers)
        self.loaded: set[str] = set()
        self.supported = True
        self._lock = asyncio.Lock()

    async def prepare(self, model: ModelRef) -> None:
        adapter = model.adapter_id
        # Only LoRA and on-demand full-model versions come with weights to load; other ids
        # name what the server serves already.
        if not adapter or not model.artifact_uri or adapter in self.loaded or not self.supported:
            return
        route, field, listed_key = (("/admin/models", "model_id", "models") if model.full_model
                                    else ("/admin/adapters", "adapter_id", "adapters"))
        async with self._lock:
            if adapter in self.loaded:
                return
            try:
                listed = await self.http.get(route, timeout=time_left(10.0))
                if listed.status_code == 404:
                    log.info("generation backend has no %s; its models are its own", route)
                    self.supported = False
                    return
                if listed.status_code in (401, 403):
                    raise FailedPrecondition(
                        "GENERATION_ADMIN_REFUSED",
                        f"the generation server refused the admin key ({listed.status_code}) "
                        f"loading {adapter}: set LLMOPS_ADMIN_KEY (or "
                        f"LLMOPS_INFERENCE_GENERATION__ADMIN_KEY) to its admin key")
                listed.raise_for_status()
                if adapter not in {a[field] for a in listed.json()[listed_key]}:
                    await self._load(model, route, field)
            except httpx.HTTPError as exc:
                raise Unavailable("GENERATION_UNAVAILABLE",
                                  f"could not load {adapter}: {exc}") from exc
            self.loaded.add(adapter)

    async def _load(self, model: ModelRef, route: str, field: str) -> None:
        path = local_path(model.artifact_uri)
        # A full model takes longer to load than an adapter (weights, not a delta).
        resp = await self.http.post(route, json={field: model.adapter_id, "path": path},
                                    timeout=time_left(300.0 if model.full_model else 120.0))
        if resp.status_code >= 400:
            raise FailedPrecondition(
                "MODEL_NOT_SERVED" if model.full_model else "ADAPTER_NOT_SERVED",
                f"generation server refused {'model' if model.full_model else 'adapter'} "
                f"{model.adapter_id} from {path}: {resp.status_code} {resp.text[:300]}")
        log.info("loaded %s %s for %s from %s", "model" if model.full_model else "adapter",
                 model.adapter_id, model.label, path)

    def forget(self) -> None:
        """After the backend restarts, adapters must be checked again."""
        self.loaded.clear()

    async def close(self) -> None:
        await self.http.aclose()
