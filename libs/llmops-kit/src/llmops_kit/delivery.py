"""One consumed batch, from the records Kafka handed over to "ack" or "nack".

The rules (docs/events.md, "Delivery guarantees"):
- Nothing between receiving a batch and acking it may end in a commit that skips a record:
  every failure (decoding, a dead-letter publish, the handler) is retried in place with
  backoff, and past the retry window the batch is rewound (nack seeks each partition back to
  its first record) so it is delivered again.
- A record too large for the platform, or one that cannot be decoded, is dead-lettered.
- A failure that means "a dependency is down" (see `is_transient`, or a health probe of the
  bus reporting down) is retried without limit and never dead-lettered; the bus reports itself
  degraded meanwhile (the service's gRPC health says NOT_SERVING).
- Any other failure isolates the batch: its records are retried one at a time, so the good
  ones are handled exactly once, and a record that fails `max_handler_failures` times with the
  dependencies healthy is dead-lettered as HANDLER_FAILED.

A pipelined consumer (batch_consumer.py) decodes a batch ahead with `prepare` (no side
effects: what cannot be decoded is only noted, and dead-lettered when the batch runs), and
may let the handler's own `prepare_items` hook work on the decoded items there too (e.g. build
rows); the handler gets that as `Batch.prepared` on the attempt at the whole batch, and None
on a retry of a part of it (then it works on `Batch.items` itself).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import grpc
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaTimeoutError, KafkaUnavailableError
from google.protobuf.message import Message

from llmops_kit import dead_letters, tracing
from llmops_kit.context import bound
from llmops_kit.errors import DeadlineExceeded, PoisonMessage, Unavailable
from llmops_kit.events import EventType, decode
from llmops_kit.metrics import KitMetrics, kit_metrics

if TYPE_CHECKING:
    from llmops_kit.kafka import EventBus

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
Where = tuple[str, int, int]  # topic, partition, offset

# Exception class names (anywhere in the MRO) of dependency clients that mean "cannot reach it";
# matched by name so the kit does not import every client library.
TRANSIENT_NAMES = frozenset({
    "OperationalError",  # SQLAlchemy / DB-API: connection refused, database locked
    "InterfaceError",
    "TransportError",  # httpx: connect, read, write, pool timeouts
    "WeaviateConnectionError",
    "WeaviateTimeoutError",
    "WeaviateStartUpError",
    "WeaviateGRPCUnavailableError",
    "WeaviateRetryError",
    "WeaviateClosedClientError",
})
_TRANSIENT_GRPC = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# Kafka itself unreachable; aiokafka does not mark these `retriable`.
_TRANSIENT_KAFKA = (KafkaTimeoutError, KafkaUnavailableError)


class DeadLetterFailed(Unavailable):
    """The dead-letter topic could not be written; the batch is retried, never skipped."""

    def __init__(self, message: str) -> None:
        super().__init__("DEAD_LETTER_FAILED", message)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says a dependency is down rather than the record bad."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, Unavailable | DeadlineExceeded | ConnectionError | TimeoutError):
            return True
        if isinstance(seen, _TRANSIENT_KAFKA):
            return True
        if getattr(seen, "retriable", False) is True:  # aiokafka's KafkaError subclasses
            return True
        if isinstance(seen, grpc.aio.AioRpcError) and seen.code() in _TRANSIENT_GRPC:
            return True
        if any(cls.__name__ in TRANSIENT_NAMES for cls in type(seen).__mro__):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def where(record: ConsumerRecord[Any, Any]) -> Where:
    return (record.topic, record.partition, record.offset)


@dataclass
class Received(Generic[M]):
    """One decoded event and the record it came from."""

    event: M
    record: ConsumerRecord[Any, Any]

    @property
    def tenant(self) -> str:
        return str(self.event.envelope.tenant_id)  # type: ignore[attr-defined]


@dataclass
class Batch(Generic[M]):
    """What a handler gets: decoded events plus a way to dead-letter one of them."""

    items: list[Received[M]]
    _bus: EventBus
    _group: str
    # Records finished (handled or dead-lettered); shared by every attempt at one batch, so a
    # retried batch neither dead-letters a record twice nor hands a finished one over again.
    _done: set[Where] = field(default_factory=set)
    # What the subscription's prepare_items hook made of exactly these items (None: not made).
    prepared: Any = None

    async def dead_letter(self, item: Received[M], error: PoisonMessage) -> None:
        if where(item.record) not in self._done:
            await self._bus.dead_letter(item.record, error, self._group)
            self._done.add(where(item.record))


BatchHandler = Callable[[Batch[M]], Awaitable[None]]
PrepareItems = Callable[[list[Received[M]]], Any]


@dataclass
class Prepared(Generic[M]):
    """A batch decoded ahead of its turn (Delivery.prepare): nothing dead-lettered yet."""

    items: list[Received[M]]
    poison: list[tuple[ConsumerRecord[Any, Any], PoisonMessage]]
    payload: Any = None


@dataclass
class _Progress(Generic[M]):
    records: tuple[ConsumerRecord[Any, Any], ...]
    done: set[Where] = field(default_factory=set)
    items: list[Received[M]] | None = None
    isolate: bool = False
    current: Where | None = None
    prepared: Prepared[M] | None = None
    all_done: bool = False  # the whole batch was handled in one go


class Delivery(Generic[M]):
    """Runs one subscription's batches (see module doc). `run` says ack (True) or nack."""

    first_delay = 0.2
    max_delay = 5.0

    def __init__(self, bus: EventBus, event_type: EventType[M], group: str,
                 handler: BatchHandler[M], max_retry_seconds: float,
                 metrics: KitMetrics | None = None,
                 prepare_items: PrepareItems[M] | None = None) -> None:
        self.bus = bus
        self.metrics = metrics or kit_metrics()
        self.event_type = event_type
        self.group = group
        self.handler = handler
        self.max_retry_seconds = max_retry_seconds
        self.prepare_items = prepare_items
        # Deterministic failures per record; kept across rewinds, dropped once it is acked.
        self.failures: dict[Where, int] = {}

    def prepare(self, records: tuple[ConsumerRecord[Any, Any], ...]) -> Prepared[M]:
        """Decodes `records` ahead of `run` (see the module doc); no side effects."""
        items: list[Received[M]] = []
        poison: list[tuple[ConsumerRecord[Any, Any], PoisonMessage]] = []
        limit = self.bus.settings.max_record_bytes
        for record in records:
            got = self._decode_one(record, limit)
            if isinstance(got, Received):
                items.append(got)
            else:
                poison.append((record, got))
        payload = None
        if self.prepare_items is not None and items:
            try:
                payload = self.prepare_items(items)
            except Exception:
                # The handler works on the items itself when the batch runs, where a failure
                # is retried, isolated and dead-lettered by the rules above.
                log.warning("%s: preparing a batch failed; it is handled without",
                            self.event_type.topic, exc_info=True)
        return Prepared(items, poison, payload)

    async def run(self, records: tuple[ConsumerRecord[Any, Any], ...],
                  prepared: Prepared[M] | None = None) -> bool:
        """`_run` inside the batch's span (continuing its producers' traces), measured.
        `prepared`: this very batch, decoded by `prepare`."""
        started = time.perf_counter()
        topic = self.event_type.topic
        producers = tracing.producers(records) if tracing.active() else []
        with tracing.consume_span(topic, self.group, producers) as span:
            span.set_attribute("messaging.batch.message_count", len(records))
            done = await self._run(records, prepared)
            span.set_attribute("llmops.outcome", "ack" if done else "rewind")
        m = self.metrics
        m.child(m.batch_duration, topic, self.group).observe(time.perf_counter() - started)
        if done:
            m.child(m.records_processed, topic, self.group).inc(len(records))
        else:
            m.child(m.batches_rewound, topic, self.group).inc()
        return done

    async def _run(self, records: tuple[ConsumerRecord[Any, Any], ...],
                   prepared: Prepared[M] | None) -> bool:
        progress: _Progress[M] = _Progress(records, prepared=prepared)
        deadline = time.monotonic() + self.max_retry_seconds
        delay = self.first_delay
        while True:
            try:
                await self._attempt(progress)
                await self.bus.report(self.group, healthy=True)
                if self.failures:
                    for record in records:
                        self.failures.pop(where(record), None)
                return True
            except Exception as exc:
                retry_now = await self._failed(progress, exc)
            if self.bus.stopping:
                return False
            if retry_now:
                continue
            if time.monotonic() + delay > deadline:
                log.error("batch of %s failed for %.0fs; rewinding it for redelivery",
                          self.event_type.topic, self.max_retry_seconds)
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)

    async def _failed(self, progress: _Progress[M], exc: Exception) -> bool:
        """Classifies a failed attempt; True when the next attempt should start without delay."""
        transient = is_transient(exc) or not await self.bus.dependencies_healthy()
        if transient:
            await self.bus.report(self.group, healthy=False)
            log.warning("%s: a dependency is down, retrying (%s)", self.event_type.topic,
                        type(exc).__name__, exc_info=exc)
            return False
        await self.bus.report(self.group, healthy=True)
        if not progress.isolate:
            log.warning("%s: batch failed; retrying its records one by one", self.event_type.topic,
                        exc_info=exc)
            progress.isolate = True
            return True
        at = progress.current
        if at is None:
            log.error("%s: batch failed outside the handler", self.event_type.topic, exc_info=exc)
            return False
        count = self.failures[at] = self.failures.get(at, 0) + 1
        log.warning("%s[%d]@%d failed %d time(s)", *at, count, exc_info=exc)
        if count < self.bus.settings.max_handler_failures:
            return False
        record = next(r for r in progress.records if where(r) == at)
        error = PoisonMessage(dead_letters.HANDLER_FAILED,
                              f"failed {count} times: {type(exc).__name__}: {exc}")
        try:
            await self.bus.dead_letter(record, error, self.group)
        except DeadLetterFailed:
            await self.bus.report(self.group, healthy=False)
            log.warning("dead-letter topic of %s cannot be written; retrying", at[0],
                        exc_info=True)
            return False
        progress.done.add(at)
        self.failures.pop(at, None)
        return True

    async def _attempt(self, progress: _Progress[M]) -> None:
        progress.current = None
        if progress.all_done:
            return
        if progress.items is None:
            progress.items = await self._decode(progress)
        done = progress.done
        # Nothing finished by number yet (the usual first attempt): no per-record look-ups.
        pending = [i for i in progress.items if where(i.record) not in done] if done \
            else list(progress.items)
        if not pending:
            return
        if not progress.isolate:
            whole = progress.prepared is not None and len(pending) == len(progress.items)
            await self._handle(pending, progress,
                               progress.prepared.payload if whole and progress.prepared else None)
            progress.all_done = True
            return
        for item in pending:
            if where(item.record) in progress.done:  # the handler dead-lettered it
                continue
            progress.current = where(item.record)
            await self._handle([item], progress)
            progress.done.add(where(item.record))

    async def _decode(self, progress: _Progress[M]) -> list[Received[M]]:
        """Decodes every record, dead-lettering what can never be handled. A dead-letter
        failure raises before anything is returned, so the whole batch is tried again."""
        if progress.prepared is not None:
            for record, error in progress.prepared.poison:
                if where(record) not in progress.done:
                    await self.bus.dead_letter(record, error, self.group)
                    progress.done.add(where(record))
            return list(progress.prepared.items)
        items: list[Received[M]] = []
        limit = self.bus.settings.max_record_bytes
        for record in progress.records:
            if where(record) in progress.done:
                continue
            got = self._decode_one(record, limit)
            if isinstance(got, Received):
                items.append(got)
                continue
            await self.bus.dead_letter(record, got, self.group)
            progress.done.add(where(record))
        return items

    def _decode_one(self, record: ConsumerRecord[Any, Any],
                    limit: int) -> Received[M] | PoisonMessage:
        problem = dead_letters.too_large(record, limit)
        if problem is not None:
            return problem
        try:
            return Received(decode(self.event_type, record.value), record)
        except PoisonMessage as exc:
            return exc

    async def _handle(self, items: list[Received[M]], progress: _Progress[M],
                      prepared: Any = None) -> None:
        first = items[0].event.envelope  # type: ignore[attr-defined]
        with bound(first.tenant_id, first.trace_id):
            await self.handler(Batch(items, self.bus, self.group, progress.done, prepared))
