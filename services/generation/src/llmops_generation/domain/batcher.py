"""Continuous (iteration-level) batching: one task owns the model, every step serves every sequence.

Between two decoding steps the loop admits waiting requests (up to `max_batch_size`), drops
finished or abandoned ones, and runs control operations (adapter loads) that must not overlap
a forward pass. The forward pass itself runs in a worker thread so the event loop keeps
serving HTTP. Each sequence stops on its own condition; the others carry on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from llmops_generation.domain.errors import GenerationError, OverloadedError
from llmops_generation.domain.model import (
    Completion,
    ErrorEvent,
    Event,
    FinishEvent,
    FinishReason,
    GenerationRequest,
    NewSequence,
    PrefillToken,
    StepToken,
    Token,
    TokenEvent,
)
from llmops_generation.domain.text import IncrementalDetokenizer, StopSequences
from llmops_generation.ports import Decoder, TextCodec

log = logging.getLogger(__name__)
T = TypeVar("T")


class StepObserver(Protocol):
    """Told about every step (metrics); must be cheap, it runs on the event loop."""

    def on_step(self, batch_size: int, admitted: int, prefill_tokens: int, seconds: float) -> None: ...

    def on_queue(self, waiting: int, running: int) -> None: ...

    def on_prefill(self, reused: int, computed: int) -> None:
        """Prompt tokens of the sequences admitted in a step: from a cached prefix, or computed."""
        ...


class _NoObserver:
    def on_step(self, batch_size: int, admitted: int, prefill_tokens: int, seconds: float) -> None:
        pass

    def on_queue(self, waiting: int, running: int) -> None:
        pass

    def on_prefill(self, reused: int, computed: int) -> None:
        pass


@dataclass(eq=False)
class _Sequence:
    seq_id: int
    request: GenerationRequest
    detok: IncrementalDetokenizer
    stops: StopSequences
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    generated: int = 0
    text: str = ""
    prefill: tuple[PrefillToken, ...] = ()
    done: bool = False
    cancelled: bool = False


class SequenceHandle:
    """The caller's side of one submitted request: its events, and a way to abandon it."""

    def __init__(self, seq: _Sequence, batcher: ContinuousBatcher) -> None:
        self._seq = seq
        self._batcher = batcher
        self.input_length = len(seq.request.input_ids)
        self.seed = seq.request.sampling.seed

    async def events(self) -> AsyncIterator[Event]:
        """Token events up to the one that carries `finish`, or an ErrorEvent.

        Leaving the iteration early cancels the sequence.
        """
        finished = False
        try:
            while True:
                event = await self._seq.events.get()
                finished = isinstance(event, ErrorEvent) or event.finish is not None
                yield event
                if finished:
                    return
        finally:
            if not finished:
                self.cancel()

    async def collect(self) -> Completion:
        completion = Completion()
        async for event in self.events():
            if isinstance(event, ErrorEvent):
                raise event.error
            completion.tokens.append(event)
            completion.finish = event.finish
        return completion

    def cancel(self) -> None:
        self._batcher.cancel(self._seq)


@dataclass(eq=False)
class _ControlOp:
    fn: Callable[[], Any]
    ready: Callable[[], bool]
    future: asyncio.Future[Any]


class ContinuousBatcher:
    def __init__(
        self,
        decoder: Decoder,
        codec: TextCodec,
        *,
        max_batch_size: int,
        max_prefill_tokens: int,
        max_waiting: int,
        observer: StepObserver | None = None,
        name: str = "model",
    ) -> None:
        self._decoder = decoder
        self._codec = codec
        self._eos = decoder.eos_token_ids
        self.max_batch_size = max_batch_size
        self._max_prefill_tokens = max_prefill_tokens
        self._max_waiting = max_waiting
        self._observer: StepObserver = observer or _NoObserver()
        self._name = name
        self._ids = itertools.count(1)
        self._waiting: deque[_Sequence] = deque()
        self._running: dict[int, _Sequence] = {}
        self._to_evict: set[int] = set()
        self._control: list[_ControlOp] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        # One dedicated thread runs every forward pass: torch's OpenMP team belongs to the calling
        # thread, and hopping between pool threads (asyncio.to_thread) cost ~40% throughput here.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"decoder-{name}")
        self.steps = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"batcher-{self._name}")

    @property
    def healthy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self, *, drain: bool = True) -> None:
        """Stops taking requests; with `drain` the ones already accepted still finish."""
        self._closing = True
        if not drain:
            error = GenerationError(f"model {self._name!r} was unloaded")
            for seq in [*self._waiting, *self._running.values()]:
                self._fail(seq, error)
            self._waiting.clear()
            self._to_evict.update(self._running)
            self._running.clear()
        self._wake.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    async def _in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- what callers use ------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._running)

    def submit(self, request: GenerationRequest) -> SequenceHandle:
        if self._closing:
            raise OverloadedError(f"model {self._name!r} is being unloaded")
        if len(self._waiting) >= self._max_waiting:
            raise OverloadedError("Model is overloaded")
        seq = _Sequence(
            seq_id=next(self._ids),
            request=request,
            detok=IncrementalDetokenizer(self._codec.decode, request.input_ids),
            stops=StopSequences(request.stopping.stop_sequences),
        )
        self._waiting.append(seq)
        self._observer.on_queue(len(self._waiting), len(self._running))
        self._wake.set()
        return SequenceHandle(seq, self)

    def cancel(self, seq: _Sequence) -> None:
        if seq.done or seq.cancelled:
            return
        seq.cancelled = True
        if seq.seq_id in self._running:
            self._to_evict.add(seq.seq_id)
            del self._running[seq.seq_id]
        else:
            with contextlib.suppress(ValueError):
                self._waiting.remove(seq)
        self._wake.set()

    def uses_adapter(self, adapter: str) -> bool:
        return any(s.request.adapter == adapter for s in (*self._waiting, *self._running.values()))

    async def run_exclusive(self, fn: Callable[[], T], ready: Callable[[], bool] | None = None) -> T:
        """Runs `fn` in the worker thread between two steps, once `ready()` holds."""
        if self._task is None or self._task.done():
            raise GenerationError(f"model {self._name!r} is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._control.append(_ControlOp(fn, ready or (lambda: True), future))
        self._wake.set()
        return await future

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception:
            log.exception("batcher loop crashed", extra={"model": self._name})
            raise
        finally:
            error = GenerationError(f"model {self._name!r} stopped serving")
            for seq in [*self._waiting, *self._running.values()]:
                self._fail(seq, error)
            self._waiting.clear()
            self._running.clear()
            for op in self._control:
                if not op.future.done():
                    op.future.set_exception(error)
            self._control.clear()

    async def _loop(self) -> None:
        while True:
            await self._run_control_ops()
            admit = self._pick_admissions()
            evict = self._to_evict
            self._to_evict = set()
            if not admit and not self._running and not evict:
                if self._closing and not self._waiting and not self._control:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._step(admit, evict)

    def _pick_admissions(self) -> list[_Sequence]:
        admit: list[_Sequence] = []
        prefill = 0
        while self._waiting and len(self._running) + len(admit) < self.max_batch_size:
            length = len(self._waiting[0].request.input_ids)
            # Always admit one, so a prompt longer than the prefill budget still runs.
            if admit and prefill + length > self._max_prefill_tokens:
                break
            admit.append(self._waiting.popleft())
            prefill += length
        return admit

    async def _run_control_ops(self) -> None:
        for op in [op for op in self._control if op.ready()]:
            self._control.remove(op)
            try:
                result = await self._in_worker(op.fn)
            except Exception as exc:
                if not op.future.done():
                    op.future.set_exception(exc)
            else:
                if not op.future.done():
                    op.future.set_result(result)

    async def _step(self, admit: list[_Sequence], evict: set[int]) -> None:
        for seq in admit:
            self._running[seq.seq_id] = seq
        specs = [
            NewSequence(
                seq_id=s.seq_id,
                input_ids=s.request.input_ids,
                sampling=s.request.sampling,
                adapter=s.request.adapter,
                want_prefill_logprobs=s.request.decoder_input_details,
            )
            for s in admit
        ]
        started = time.perf_counter()
        try:
            outputs = await self._in_worker(self._decoder.step, specs, evict)
        except Exception as exc:
            log.exception("decoding step failed; failing the batch", extra={"model": self._name})
            error = GenerationError(f"Request failed during generation: {exc}")
            for seq in list(self._running.values()):
                self._fail(seq, error)
            self._running.clear()
            await self._in_worker(self._decoder.reset)
            return
        self.steps += 1
        prompt_tokens = sum(len(s.input_ids) for s in specs)
        self._observer.on_step(len(outputs), len(admit), prompt_tokens, time.perf_counter() - started)
        if specs:
            reused = sum(o.reused_prompt_tokens for s in specs if (o := outputs.get(s.seq_id)) is not None)
            self._observer.on_prefill(reused, prompt_tokens - reused)
        for seq_id, out in outputs.items():
            current = self._running.get(seq_id)
            if current is None:
                # Cancelled while the step ran: the decoder drops it next step.
                self._to_evict.add(seq_id)
                continue
            self._advance(current, out)
            if current.done:
                del self._running[seq_id]
                self._to_evict.add(seq_id)
        self._observer.on_queue(len(self._waiting), len(self._running))

    def _token(self, token_id: int, logprob: float, text: str | None = None) -> Token:
        special = self._codec.is_special(token_id)
        if text is None:
            text = self._codec.token_text(token_id)
        return Token(id=token_id, text=text, logprob=logprob, special=special)

    def _advance(self, seq: _Sequence, out: StepToken) -> None:
        if out.prefill_logprobs is not None:
            ids = seq.request.input_ids
            seq.prefill = tuple(
                PrefillToken(id=i, text=self._codec.token_text(i), logprob=lp)
                for i, lp in zip(ids, out.prefill_logprobs, strict=True)
            )
        seq.generated += 1
        token_id = out.token_id
        special = self._codec.is_special(token_id)
        delta = "" if special else seq.detok.push(token_id)
        reason: FinishReason | None = None
        stop_index: int | None = None
        if token_id in self._eos:
            reason = FinishReason.EOS_TOKEN
        else:
            seq.text += delta
            stop_index = seq.stops.find(seq.text, len(delta))
            if stop_index is not None:
                reason = FinishReason.STOP_SEQUENCE
            elif seq.generated >= seq.request.stopping.max_new_tokens:
                reason = FinishReason.LENGTH
        if reason is not None and not special:
            tail = seq.detok.flush()
            delta += tail
            seq.text += tail
        finish = None
        if reason is not None:
            seq.done = True
            finish = FinishEvent(
                finish_reason=reason,
                generated_text=seq.text,
                generated_tokens=seq.generated,
                input_length=len(seq.request.input_ids),
                seed=seq.request.sampling.seed,
                prefill=seq.prefill,
                stop_index=stop_index,
            )
        token = self._token(token_id, out.logprob, None if special else delta)
        top = tuple(self._token(i, lp) for i, lp in out.top_tokens)
        seq.events.put_nowait(TokenEvent(index=seq.generated, token=token, top_tokens=top, finish=finish))

    def _fail(self, seq: _Sequence, error: Exception) -> None:
        if not seq.done:
            seq.done = True
            seq.events.put_nowait(ErrorEvent(error))
