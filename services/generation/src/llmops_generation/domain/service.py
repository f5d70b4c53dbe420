"""The models a server holds (full models, each with its own batcher, and LoRA adapters on them).

A request names what it wants with one selector (TGI's `adapter_id`, or a chat request's
`model`): the id of a loaded full model, or of an adapter on one. No selector means the
default model. Models and adapters are loaded and unloaded while the server runs; unloading
stops new requests at once and lets the ones already running finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from llmops_generation.domain.batcher import ContinuousBatcher, SequenceHandle, StepObserver
from llmops_generation.domain.errors import Conflict, UnknownModel, ValidationError
from llmops_generation.domain.model import ModelSpec
from llmops_generation.domain.validation import Limits, RawParameters, build_request
from llmops_generation.ports import Decoder, ModelLoader, TextCodec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = 8
    max_prefill_tokens: int = 4096
    max_waiting: int = 128


@dataclass(eq=False)
class Engine:
    """One loaded full model."""

    spec: ModelSpec
    codec: TextCodec
    decoder: Decoder
    batcher: ContinuousBatcher
    adapters: dict[str, Path] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.spec.model_id


@dataclass(frozen=True)
class Target:
    """Where one request runs: an engine, and the adapter on it (None: the base weights)."""

    engine: Engine
    adapter: str | None

    @property
    def name(self) -> str:
        return self.adapter or self.engine.model_id


class GenerationService:
    def __init__(
        self,
        loader: ModelLoader,
        limits: Limits,
        batching: BatchingConfig,
        observer_for: Callable[[str], StepObserver | None] | None = None,
    ) -> None:
        self._loader = loader
        self.limits = limits
        self._batching = batching
        self._observer_for = observer_for or (lambda _name: None)
        self._engines: dict[str, Engine] = {}
        self._adapter_owner: dict[str, str] = {}
        self.default_model_id: str | None = None
        self._admin_lock = asyncio.Lock()

    # -- serving ---------------------------------------------------------------------------

    @property
    def default(self) -> Engine:
        if self.default_model_id is None:
            raise UnknownModel("no model is loaded")
        return self._engines[self.default_model_id]

    def resolve(self, selector: str | None, *, placeholders: frozenset[str] = frozenset()) -> Target:
        """The engine and adapter `selector` names; an unknown one is UnknownModel (404).

        No selector means the default model, and so does a name in `placeholders` (chat's
        `model`: huggingface_hub sends a placeholder when the caller names no model). Anything else
        that is not loaded is refused instead of silently answering from the default model.
        """
        if not selector or selector in placeholders:
            return Target(self.default, None)
        if selector in self._engines:
            return Target(self._engines[selector], None)
        owner = self._adapter_owner.get(selector)
        if owner is not None:
            return Target(self._engines[owner], selector)
        raise UnknownModel(f"model or adapter {selector!r} is not loaded")

    def submit(
        self,
        target: Target,
        input_ids: Sequence[int],
        params: RawParameters,
        *,
        stream: bool = False,
    ) -> SequenceHandle:
        request = build_request(input_ids, params, self.limits, stream=stream)
        return target.engine.batcher.submit(replace(request, adapter=target.adapter))

    @property
    def healthy(self) -> bool:
        return self.default_model_id is not None and self.default.batcher.healthy

    # -- admin -----------------------------------------------------------------------------

    def models(self) -> list[Engine]:
        return list(self._engines.values())

    def adapters(self) -> Mapping[str, str]:
        """adapter id -> the model id it runs on."""
        return dict(self._adapter_owner)

    async def load_model(self, spec: ModelSpec, *, default: bool = False) -> Engine:
        async with self._admin_lock:
            if spec.model_id in self._engines or spec.model_id in self._adapter_owner:
                raise Conflict(f"{spec.model_id!r} is already loaded")
            codec, decoder = await asyncio.to_thread(self._loader.load, spec)
            batcher = ContinuousBatcher(
                decoder,
                codec,
                max_batch_size=self._batching.max_batch_size,
                max_prefill_tokens=self._batching.max_prefill_tokens,
                max_waiting=self._batching.max_waiting,
                observer=self._observer_for(spec.model_id),
                name=spec.model_id,
            )
            batcher.start()
            engine = Engine(spec, codec, decoder, batcher)
            self._engines[spec.model_id] = engine
            if default or self.default_model_id is None:
                self.default_model_id = spec.model_id
            log.info("model serving", extra={"model_id": spec.model_id, "default": default})
            return engine

    async def unload_model(self, model_id: str) -> None:
        async with self._admin_lock:
            engine = self._engines.get(model_id)
            if engine is None:
                raise UnknownModel(f"model {model_id!r} is not loaded")
            if model_id == self.default_model_id:
                raise Conflict(f"{model_id!r} is the default model and cannot be unloaded")
            del self._engines[model_id]
            for adapter in list(engine.adapters):
                self._adapter_owner.pop(adapter, None)
            await engine.batcher.close(drain=True)
            await asyncio.to_thread(engine.decoder.close)
            log.info("model unloaded", extra={"model_id": model_id})

    async def load_adapter(self, adapter_id: str, path: Path, base_model: str | None = None) -> Target:
        async with self._admin_lock:
            if adapter_id in self._adapter_owner or adapter_id in self._engines:
                raise Conflict(f"{adapter_id!r} is already loaded")
            engine = self.resolve(base_model).engine if base_model else self.default
            if not (path / "adapter_config.json").is_file():
                raise ValidationError(f"{path} is not a PEFT adapter folder (no adapter_config.json)")
            try:
                await engine.batcher.run_exclusive(lambda: engine.decoder.load_adapter(adapter_id, path))
            except Exception as exc:  # PEFT raises many kinds for a bad or mismatched adapter
                raise ValidationError(f"adapter {adapter_id!r} could not be loaded: {exc}") from exc
            engine.adapters[adapter_id] = path
            self._adapter_owner[adapter_id] = engine.model_id
            log.info("adapter loaded", extra={"adapter_id": adapter_id, "model_id": engine.model_id})
            return Target(engine, adapter_id)

    async def unload_adapter(self, adapter_id: str) -> None:
        async with self._admin_lock:
            owner = self._adapter_owner.pop(adapter_id, None)
            if owner is None:
                raise UnknownModel(f"adapter {adapter_id!r} is not loaded")
            engine = self._engines[owner]
            engine.adapters.pop(adapter_id, None)
            # New requests can no longer name it; the ones already queued or running finish first.
            await engine.batcher.run_exclusive(
                lambda: engine.decoder.unload_adapter(adapter_id),
                ready=lambda: not engine.batcher.uses_adapter(adapter_id),
            )
            log.info("adapter unloaded", extra={"adapter_id": adapter_id, "model_id": owner})

    async def close(self) -> None:
        for engine in list(self._engines.values()):
            await engine.batcher.close(drain=False)
            engine.decoder.close()
        self._engines.clear()
        self._adapter_owner.clear()
        self.default_model_id = None
