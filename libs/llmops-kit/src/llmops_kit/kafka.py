"""Kafka plumbing on FastStream + aiokafka: the service's EventBus and its topics.

Consumers are batch subscribers with manual commit. What happens to a batch between receiving
and acking it (decoding, dead letters, retries, isolation of a failing record, rewinding) is
delivery.py's; this module builds the clients (one place: `KafkaSettings.client_options()`),
publishes events and dead letters, and tracks whether the consumers' dependencies are healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from google.protobuf.message import Message

from llmops_kit import dead_letters, topics, tracing
from llmops_kit.batch_consumer import BatchConsumer, Handle, Prepare
from llmops_kit.consumer_lag import ConsumerLag
from llmops_kit.dead_letters import (
    HEADER_DLQ_ERROR,
    HEADER_DLQ_GROUP,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_PARTITION,
    HEADER_DLQ_REASON,
    HEADER_DLQ_SHA256,
    HEADER_DLQ_SIZE,
    HEADER_DLQ_TOPIC,
)
from llmops_kit.delivery import Batch, BatchHandler, DeadLetterFailed, Delivery, Received
from llmops_kit.errors import PoisonMessage
from llmops_kit.events import EventType, headers_for
from llmops_kit.metrics import kit_metrics
from llmops_kit.settings import KafkaSettings

__all__ = [
    "HEADER_DLQ_ERROR", "HEADER_DLQ_GROUP", "HEADER_DLQ_OFFSET", "HEADER_DLQ_PARTITION",
    "HEADER_DLQ_REASON", "HEADER_DLQ_SHA256", "HEADER_DLQ_SIZE", "HEADER_DLQ_TOPIC",
    "Batch", "BatchHandler", "EventBus", "HealthProbe", "Received", "ensure_topics",
]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
P = TypeVar("P")
# A dependency's health check (Weaviate ready, database reachable): True when it is up.
HealthProbe = Callable[[], Awaitable[bool]]
HealthListener = Callable[[bool], Awaitable[None]]
PROBE_TIMEOUT_SECONDS = 5.0
# How often registered probes are polled, so readiness follows a dependency even when no
# record is in flight to notice it.
PROBE_INTERVAL_SECONDS = 2.0
DEPENDENCIES = "dependencies"  # the pseudo consumer group the probe watcher reports as


class EventBus:
    """The service's one Kafka connection: a FastStream broker, its publisher and consumers."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self.stopping = False
        self._probes: list[HealthProbe] = []
        self._watcher: asyncio.Task[None] | None = None
        self._listeners: list[HealthListener] = []
        self._degraded: set[str] = set()
        # Telemetry (metrics.py, consumer_lag.py): records, dead letters, lag per partition.
        self.metrics = kit_metrics()
        self.lag = ConsumerLag(self.metrics)
        self._lag_task: asyncio.Task[None] | None = None
        # Raw (non-FastStream) consumers: started after the broker, stopped before it (their
        # handlers publish dead letters through it).
        self.raw_consumers: list[BatchConsumer[Any]] = []
        self.broker = KafkaBroker(
            **settings.broker_options(),
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            max_request_size=settings.producer_max_request_size,
            request_timeout_ms=settings.request_timeout_ms,
            linger_ms=5,
            graceful_timeout=30.0,
            # FastStream reports what it catches itself (a Kafka error in its poll loop) here.
            logger=logging.getLogger("llmops_kit.faststream"),
        )

    async def start(self) -> None:
        self.stopping = False
        await self.broker.start()
        for consumer in self.raw_consumers:
            await consumer.start()
        if self._probes and self._watcher is None:
            self._watcher = asyncio.create_task(self._watch_dependencies())
        if self.lag.sources and self._lag_task is None:
            self._lag_task = asyncio.create_task(self.lag.run(self.settings.lag_refresh_seconds))

    async def stop(self) -> None:
        self.stopping = True  # a batch retrying in place gives up (rewinds) instead of waiting
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self._lag_task is not None:
            self._lag_task.cancel()
            await asyncio.gather(self._lag_task, return_exceptions=True)
            self._lag_task = None
        for consumer in reversed(self.raw_consumers):
            try:
                await consumer.stop()
            except Exception:  # the others and the broker still stop
                log.exception("consumer %s did not stop cleanly", consumer.group)
        await self.broker.stop()
        self.lag.clear()

    async def _watch_dependencies(self) -> None:
        while True:
            await self.report(DEPENDENCIES, healthy=await self.dependencies_healthy())
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)

    # -- health ---------------------------------------------------------------------------

    def add_health_probe(self, probe: HealthProbe) -> None:
        """A dependency check consulted when a handler fails: while any probe reports down,
        failures count as an outage (retried forever), never against the record. Probes are
        also polled every PROBE_INTERVAL_SECONDS while the bus runs, so the service reports
        NOT_SERVING during an outage even with no record in flight."""
        self._probes.append(probe)

    def on_health_change(self, listener: HealthListener) -> None:
        """Called with False when a consumer starts retrying through an outage, True after."""
        self._listeners.append(listener)

    @property
    def healthy(self) -> bool:
        return not self._degraded

    async def dependencies_healthy(self) -> bool:
        for probe in self._probes:
            try:
                if not await asyncio.wait_for(probe(), PROBE_TIMEOUT_SECONDS):
                    return False
            except Exception:
                log.warning("health probe failed", exc_info=True)
                return False
        return True

    async def report(self, group: str, *, healthy: bool) -> None:
        """A consumer's state; listeners hear only when the bus as a whole changes."""
        was = self.healthy
        if healthy:
            self._degraded.discard(group)
        else:
            self._degraded.add(group)
        if self.healthy != was:
            log.warning("event consumers %s", "recovered" if self.healthy else "degraded",
                        extra={"consumer_groups": sorted(self._degraded)})
            for listener in self._listeners:
                await listener(self.healthy)

    # -- publishing -----------------------------------------------------------------------

    async def publish(self, event_type: EventType[M], event: M, key: bytes) -> None:
        """Publishes one event and waits for the broker's acknowledgement (acks=all)."""
        await self.broker.publish(
            event.SerializeToString(),
            topic=event_type.topic,
            key=key,
            # The current span's `traceparent` too, so consumers continue the trace.
            headers=dict(tracing.inject(headers_for(event, event_type))),
        )

    async def publish_many(self, event_type: EventType[M], events: Sequence[tuple[bytes, M]]) -> None:
        """Publishes events concurrently (the producer batches them) and waits for all acks."""
        await asyncio.gather(*(self.publish(event_type, ev, key) for key, ev in events))

    async def dead_letter(
        self, record: ConsumerRecord[Any, Any], error: PoisonMessage, group: str
    ) -> None:
        """Copies `record` to its `.dlq` topic (dead_letters.build); raises DeadLetterFailed
        when that cannot be written, so the caller's batch is retried rather than skipped."""
        size = self.settings.dlq_payload_bytes
        letter = dead_letters.build(record, error, group, size)
        try:
            try:
                await self._publish_letter(record, letter)
            except MessageSizeTooLargeError:
                # More than the producer or the topic takes: keep a bounded copy instead.
                error = PoisonMessage(dead_letters.RECORD_TOO_LARGE,
                                      f"{error.reason}, and too large to republish: {error.message}")
                letter = dead_letters.build(record, error, group, size, bounded=True)
                await self._publish_letter(record, letter)
        except Exception as exc:
            raise DeadLetterFailed(
                f"cannot dead-letter {record.topic}[{record.partition}]@{record.offset}: "
                f"{type(exc).__name__}: {exc}") from exc
        log.warning(
            "dead-lettered %s[%s]@%s: %s", record.topic, record.partition, record.offset,
            letter.headers[HEADER_DLQ_ERROR], extra={"reason": error.reason},
        )
        m = self.metrics
        m.child(m.records_dead_lettered, record.topic, group, error.reason).inc()

    async def _publish_letter(self, record: ConsumerRecord[Any, Any],
                              letter: dead_letters.DeadLetter) -> None:
        await self.broker.publish(letter.value, topic=topics.dead_letter(record.topic),
                                  key=letter.key, headers=letter.headers)

    # -- consuming ------------------------------------------------------------------------

    def subscribe_batch(
        self,
        event_type: EventType[M],
        group_id: str,
        handler: BatchHandler[M],
        *,
        max_records: int = 64,
        batch_timeout_ms: int = 50,
        max_retry_seconds: float | None = None,
        start_at: Literal["earliest", "latest"] = "earliest",
    ) -> None:
        """Registers a batch consumer; call before start(). See delivery.py for what happens
        to a batch; here it only ends in ack (commit) or nack (seek back, redelivered).

        `start_at` is where a group without committed offsets begins: "earliest" (work that
        must not be skipped) or "latest" (a per-replica group that only needs what happens
        from now on, e.g. cache invalidations).
        """
        window = self.settings.retry_window_seconds if max_retry_seconds is None \
            else max_retry_seconds
        delivery = Delivery(self, event_type, group_id, handler, window, self.metrics)

        async def consume(_: list[bytes], msg: KafkaMessage) -> None:
            raw = msg.raw_message
            records: tuple[ConsumerRecord[Any, Any], ...] = raw if isinstance(raw, tuple) else (raw,)
            done = False
            try:
                done = await delivery.run(records)
            finally:
                # Also on cancellation or a bug in run(): an unacked batch is always rewound,
                # so no later commit of this consumer can move past it.
                await settle_batch(msg, done)

        subscriber = self.broker.subscriber(
            event_type.topic,
            group_id=group_id,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=batch_timeout_ms,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset=start_at,
            max_partition_fetch_bytes=self.settings.consumer_fetch_bytes,
            fetch_max_bytes=max(50 * 1024 * 1024, self.settings.consumer_fetch_bytes),
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
        )
        subscriber(consume)
        # Its aiokafka consumer exists while the bus runs; the lag watcher reads it.
        self.lag.add(lambda: getattr(subscriber, "consumer", None), group_id)

    def subscribe_raw(self, topic_names: Sequence[str], group_id: str, prepare: Prepare[P],
                      handle: Handle[P], *, max_records: int = 10_000,
                      batch_timeout_ms: int = 200,
                      start_at: Literal["earliest", "latest"] = "earliest") -> BatchConsumer[P]:
        """A raw aiokafka consumer for high-volume work (batch_consumer.py): records are
        handed over undecoded (run them through a `Delivery`), one batch is prepared while the
        one before it is handled, offsets are committed after `handle` returned True. Call
        before start()."""
        consumer = BatchConsumer(self.settings, topic_names, group_id, prepare, handle,
                                 client_id=self.client_id, max_records=max_records,
                                 batch_timeout_ms=batch_timeout_ms, start_at=start_at)
        self.raw_consumers.append(consumer)
        self.lag.add(lambda: consumer.consumer, group_id)
        return consumer


async def settle_batch(msg: KafkaMessage, ack: bool) -> None:
    """Acks a manually acked batch (commits past it) or nacks it (seeks back: redelivered)."""
    try:
        await (msg.ack() if ack else msg.nack())
    except Exception:
        # A commit refused after a rebalance, or a seek on a partition no longer ours: the
        # new owner starts from the last commit, so the batch is redelivered there.
        log.warning("could not %s a batch; it will be redelivered", "ack" if ack else "nack",
                    exc_info=True)


async def ensure_topics(
    settings: KafkaSettings, names: Sequence[str], partitions: int = 4, replication: int = 1
) -> None:
    """Creates the topics (and their dead-letter topics) if missing, and gives every `.dlq`
    topic the configured retention; safe to call on every start."""
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        dlq_config = {"retention.ms": str(settings.dlq_retention_ms)}
        wanted = [NewTopic(n, num_partitions=partitions, replication_factor=replication,
                           topic_configs=dlq_config if n == topics.dead_letter(name) else None)
                  for name in names for n in (name, topics.dead_letter(name)) if n not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica was first
                await admin.create_topics(wanted)
        await _set_dlq_retention(
            admin, [topics.dead_letter(n) for n in names if topics.dead_letter(n) in existing],
            dlq_config["retention.ms"])
    finally:
        await admin.close()


_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source of a per-topic override


async def _set_dlq_retention(admin: AIOKafkaAdminClient, names: list[str], retention: str) -> None:
    """retention.ms of existing dead-letter topics, keeping their other overrides (AlterConfigs
    replaces a topic's whole override set)."""
    if not names:
        return
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    changes = []
    for response in responses:
        for resource in response.to_object()["resources"]:
            overrides = {e["config_names"]: e["config_value"] for e in resource["config_entries"]
                         if e.get("config_source") == _DYNAMIC_TOPIC_CONFIG}
            if resource["error_code"] or overrides.get("retention.ms") == retention:
                continue
            changes.append(ConfigResource(ConfigResourceType.TOPIC, resource["resource_name"],
                                          {**overrides, "retention.ms": retention}))
    if changes:
        await admin.alter_configs(changes)
        log.info("dead-letter retention set to %s ms on %d topics", retention, len(changes))
