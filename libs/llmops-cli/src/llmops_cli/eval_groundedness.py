"""Inference's groundedness of the runner's answers, read back from InferenceCompleted.

Inference scores an answer after sending it (QualityScorer: the share of the answer's sentences
supported by the passages it cites) and publishes the score in InferenceCompleted, whose
envelope event id is the answer's request id. `begin()` notes where the topic ends before the
first question is asked; `scores()` reads from there until every answer's event arrived or the
wait is over. Any failure leaves the scores out (logged): the run is recorded without them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from llmops.inference.v1 import inference_pb2
from llmops_kit import events
from llmops_kit.errors import PoisonMessage
from llmops_kit.settings import KafkaSettings

log = logging.getLogger(__name__)


class KafkaGroundedness:
    def __init__(self, kafka: KafkaSettings, timeout_seconds: float = 60.0,
                 event_type: events.EventType[inference_pb2.InferenceCompleted] = (
                     events.INFERENCE_COMPLETED)) -> None:
        self.kafka = kafka
        self.timeout = timeout_seconds
        self.event_type = event_type
        self._consumer: AIOKafkaConsumer | None = None
        self._start: dict[TopicPartition, int] = {}

    async def begin(self) -> None:
        topic = self.event_type.topic
        consumer = AIOKafkaConsumer(topic, **self.kafka.client_options(), group_id=None,
                                    enable_auto_commit=False,
                                    max_partition_fetch_bytes=self.kafka.consumer_fetch_bytes)
        try:
            await consumer.start()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not consumer.assignment() and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # aiokafka assigns the partitions in the background
            self._start = dict(await consumer.end_offsets(list(consumer.assignment())))
            self._consumer = consumer
        except Exception as exc:
            log.warning("groundedness will not be read from %s: %s: %s", topic,
                        type(exc).__name__, exc)
            await consumer.stop()

    async def scores(self, request_ids: Sequence[str]) -> dict[str, float]:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return {}
        wanted = set(request_ids)
        found: dict[str, float] = {}
        seen: set[str] = set()
        try:
            for tp, offset in self._start.items():
                consumer.seek(tp, offset)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            while seen < wanted and loop.time() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        try:
                            ev = events.decode(self.event_type, record.value)
                        except PoisonMessage:
                            continue
                        rid = ev.envelope.event_id
                        if rid in wanted:
                            seen.add(rid)
                            if ev.HasField("groundedness"):
                                found[rid] = float(ev.groundedness)
        except Exception as exc:
            log.warning("groundedness not read from %s: %s: %s", self.event_type.topic,
                        type(exc).__name__, exc)
        finally:
            await consumer.stop()
        return found
