"""Generation through huggingface_hub's AsyncInferenceClient against TGI's Messages API.

The same code talks to the project's local generation server, a TGI server, or anything that
speaks TGI's API (vLLM, SGLang, llama.cpp). LoRA adapters are selected TGI's way: the chat
request's `model` field names the adapter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from huggingface_hub import AsyncInferenceClient
from huggingface_hub.errors import HfHubHTTPError

from llmops_inference.domain.model import Generation, ModelRef, RenderedPrompt
from llmops_kit.context import time_left
from llmops_kit.errors import FailedPrecondition, InvalidArgument, Unavailable

log = logging.getLogger(__name__)


def _messages(prompt: RenderedPrompt) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": prompt.system}] if prompt.system else []
    return [*msgs, {"role": "user", "content": prompt.user}]


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


class TgiGenerator:
    def __init__(self, url: str, timeout_seconds: float, attempts: int, backoff_seconds: float,
                 token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.attempts = attempts
        self.backoff = backoff_seconds
        self.timeout = timeout_seconds
        self.client = AsyncInferenceClient(base_url=self.url, timeout=timeout_seconds,
                                           api_key=token or "-")
        self.adapters = AdapterLoader(self.url, timeout_seconds, token)

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
                if status is not None and 400 <= status < 500:
                    # The backend refused the request itself (e.g. prompt too long): no retry.
                    # If it lost its adapters (a restart), the next request loads them again.
                    self.adapters.forget()
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

    async def generate(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                       temperature: float | None, seed: int | None) -> Generation:
        kw = self._kwargs(model, max_new_tokens, temperature, seed)
        out = await self._retrying(lambda: self.client.chat_completion(_messages(prompt), **kw))
        choice = out.choices[0]
        usage = out.usage
        return Generation(
            text=choice.message.content or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            finish_reason=str(choice.finish_reason or ""),
        )

    async def stream(self, prompt: RenderedPrompt, model: ModelRef, max_new_tokens: int,
                     temperature: float | None, seed: int | None
                     ) -> AsyncIterator[str | Generation]:
        kw = self._kwargs(model, max_new_tokens, temperature, seed)
        # Retries only cover opening the stream; once tokens flowed, a failure is the caller's.
        kw["stream_options"] = {"include_usage": True}
        chunks = await self._retrying(lambda: self.client.chat_completion(
            _messages(prompt), stream=True, **kw))
        parts: list[str] = []
        finish = ""
        prompt_tokens = completion_tokens = 0
        async for chunk in chunks:
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
        yield Generation("".join(parts), prompt_tokens, completion_tokens, finish)

    async def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            await close()
        await self.adapters.close()


class AdapterLoader:
    """Loads a LoRA version's adapter into the project's generation server on first use.

    A registry alias moved to a `peft-lora` version is served at once: the first request for it
    posts the artifact to the server's /admin/adapters, later ones find it loaded. A TGI, vLLM or
    other backend without that route is expected to have its adapters configured at its start
    (TGI's LORA_ADAPTERS); the loader notices the missing route once and stops trying.
    """

    def __init__(self, url: str, timeout_seconds: float, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_seconds,
                                      headers=headers)
        self.loaded: set[str] = set()
        self.supported = True
        self._lock = asyncio.Lock()

    async def prepare(self, model: ModelRef) -> None:
        adapter = model.adapter_id
        # Only LoRA versions come with weights to load; other ids name what the server serves.
        if not adapter or not model.artifact_uri or adapter in self.loaded or not self.supported:
            return
        async with self._lock:
            if adapter in self.loaded:
                return
            try:
                listed = await self.http.get("/admin/adapters", timeout=time_left(10.0))
                if listed.status_code == 404:
                    log.info("generation backend has no /admin/adapters; adapters are its own")
                    self.supported = False
                    return
                listed.raise_for_status()
                if adapter not in {a["adapter_id"] for a in listed.json()["adapters"]}:
                    await self._load(model)
            except httpx.HTTPError as exc:
                raise Unavailable("GENERATION_UNAVAILABLE",
                                  f"could not load adapter {adapter}: {exc}") from exc
            self.loaded.add(adapter)

    async def _load(self, model: ModelRef) -> None:
        path = model.artifact_uri.removeprefix("file://")
        resp = await self.http.post("/admin/adapters", json={"adapter_id": model.adapter_id,
                                                             "path": path},
                                    timeout=time_left(120.0))
        if resp.status_code >= 400:
            raise FailedPrecondition(
                "ADAPTER_NOT_SERVED",
                f"generation server refused adapter {model.adapter_id} from {path}: "
                f"{resp.status_code} {resp.text[:300]}")
        log.info("loaded adapter %s for %s from %s", model.adapter_id, model.label, path)

    def forget(self) -> None:
        """After the backend restarts, adapters must be checked again."""
        self.loaded.clear()

    async def close(self) -> None:
        await self.http.aclose()
