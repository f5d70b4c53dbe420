"""Kafka plumbing on FastStream + aiokafka.

Consumers are batch subscribers with manual commit: a batch is decoded at the edge
(poison messages go to `<topic>.dlq` with the reason in headers), handed to the
domain as plain messages, and its offsets are committed only after the handler
returned, i.e. after its work is durable. A transient failure (a dependency down)
is retried with backoff; past `max_retry_seconds` the batch is rewound (nack) and
redelivered. Combined with idempotent handlers this gives exactly-once effects
on top of at-least-once delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from google.protobuf.message import Message

from llmops_kit import topics
from llmops_kit.context import bound
from llmops_kit.errors import PoisonMessage
from llmops_kit.events import EventType, decode, headers_for
from llmops_kit.settings import KafkaSettings

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

HEADER_DLQ_REASON = "x-dlq-reason"
HEADER_DLQ_ERROR = "x-dlq-error"
HEADER_DLQ_TOPIC = "x-dlq-original-topic"
HEADER_DLQ_PARTITION = "x-dlq-original-partition"
HEADER_DLQ_OFFSET = "x-dlq-original-offset"
HEADER_DLQ_GROUP = "x-dlq-consumer-group"


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
    rejected: list[tuple[Received[M], PoisonMessage]] = field(default_factory=list)
    # Survives handler retries, so a retried batch does not dead-letter a record twice.
    _dead_lettered: set[tuple[str, int, int]] = field(default_factory=set)

    async def dead_letter(self, item: Received[M], error: PoisonMessage) -> None:
        where = (item.record.topic, item.record.partition, item.record.offset)
        if where not in self._dead_lettered:
            await self._bus.dead_letter(item.record, error, self._group)
            self._dead_lettered.add(where)
        self.rejected.append((item, error))


BatchHandler = Callable[[Batch[M]], Awaitable[None]]


def _header_value(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


class EventBus:
    """The service's one Kafka connection: a FastStream broker, its publisher and consumers."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self.broker = KafkaBroker(
            **settings.broker_options(),
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            max_request_size=settings.max_request_size,
            request_timeout_ms=settings.request_timeout_ms,
            linger_ms=5,
            graceful_timeout=30.0,
            logger=None,
        )

    async def start(self) -> None:
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    async def publish(self, event_type: EventType[M], event: M, key: bytes) -> None:
        """Publishes one event and waits for the broker's acknowledgement (acks=all)."""
        await self.broker.publish(
            event.SerializeToString(),
            topic=event_type.topic,
            key=key,
            headers=headers_for(event, event_type),
        )

    async def publish_many(self, event_type: EventType[M], events: Sequence[tuple[bytes, M]]) -> None:
        """Publishes events concurrently (the producer batches them) and waits for all acks."""
        await asyncio.gather(*(self.publish(event_type, ev, key) for key, ev in events))

    async def dead_letter(
        self, record: ConsumerRecord[Any, Any], error: PoisonMessage, group: str
    ) -> None:
        headers = {k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
                   for k, v in (record.headers or ())}
        headers.update({
            HEADER_DLQ_REASON: error.reason,
            HEADER_DLQ_ERROR: error.message[:2000],
            HEADER_DLQ_TOPIC: record.topic,
            HEADER_DLQ_PARTITION: str(record.partition),
            HEADER_DLQ_OFFSET: str(record.offset),
            HEADER_DLQ_GROUP: group,
        })
        await self.broker.publish(
            record.value or b"", topic=topics.dead_letter(record.topic), key=record.key,
            headers=headers,
        )
        log.warning(
            "dead-lettered %s[%s]@%s: %s", record.topic, record.partition, record.offset,
            error, extra={"reason": error.reason},
        )

    def subscribe_batch(
        self,
        event_type: EventType[M],
        group_id: str,
        handler: BatchHandler[M],
        *,
        max_records: int = 64,
        batch_timeout_ms: int = 50,
        max_retry_seconds: float = 120.0,
    ) -> None:
        """Registers a batch consumer; call before start()."""
        bus = self

        async def consume(_: list[bytes], msg: KafkaMessage) -> None:
            raw = msg.raw_message
            records: tuple[ConsumerRecord[Any, Any], ...] = raw if isinstance(raw, tuple) else (raw,)
            batch: Batch[M] = Batch([], bus, group_id)
            for record in records:
                try:
                    event = decode(event_type, record.value)
                except PoisonMessage as exc:
                    await bus.dead_letter(record, exc, group_id)
                    continue
                batch.items.append(Received(event, record))
            if batch.items and not await bus._run_with_retry(handler, batch, max_retry_seconds):
                await msg.nack()  # rewind: the batch is redelivered, nothing is skipped
                return
            await msg.ack()

        self.broker.subscriber(
            event_type.topic,
            group_id=group_id,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=batch_timeout_ms,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 * 1024 * 1024,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
        )(consume)

    async def _run_with_retry(
        self, handler: BatchHandler[M], batch: Batch[M], max_retry_seconds: float
    ) -> bool:
        deadline = time.monotonic() + max_retry_seconds
        delay = 0.2
        first = batch.items[0].event.envelope  # type: ignore[attr-defined]
        while True:
            try:
                with bound(first.tenant_id, first.trace_id):
                    await handler(batch)
                return True
            except Exception:
                if time.monotonic() + delay > deadline:
                    log.exception("batch failed for %.0fs; rewinding for redelivery",
                                  max_retry_seconds)
                    return False
                log.warning("batch failed, retrying in %.1fs", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                batch.rejected.clear()


async def ensure_topics(
    settings: KafkaSettings, names: Sequence[str], partitions: int = 4, replication: int = 1
) -> None:
    """Creates the topics (and their dead-letter topics) if missing; safe to call on every start."""
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [n for name in names for n in (name, topics.dead_letter(name)) if n not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica was first
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=replication)
                     for n in wanted]
                )
    finally:
        await admin.close()
