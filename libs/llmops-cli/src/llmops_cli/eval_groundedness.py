"""Inference's groundedness of the runner's answers, read back from InferenceCompleted.

Inference scores an answer after sending it (QualityScorer: the share of the answer's sentences
supported by the passages it cites) and publishes the score in InferenceCompleted, whose
envelope event id is the answer's request id. The runner reads the topic from just before the
run started (offsets by time) until every answer's event arrived or the wait is over.
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

    async def scores(self, request_ids: Sequence[str], since_ms: int) -> dict[str, float]:
        wanted = set(request_ids)
        found: dict[str, float] = {}
        seen: set[str] = set()
        topic = self.event_type.topic
        consumer = AIOKafkaConsumer(**self.kafka.client_options(), group_id=None,
                                    enable_auto_commit=False)
        try:
            await consumer.start()
            await consumer.topics()  # loads the cluster's metadata
            parts = [TopicPartition(topic, p)
                     for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(parts)
            offsets = await consumer.offsets_for_times({tp: since_ms for tp in parts})
            for tp in parts:
                at = offsets.get(tp)
                if at is None:
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, at.offset)
            deadline = asyncio.get_running_loop().time() + self.timeout
            while seen < wanted and asyncio.get_running_loop().time() < deadline:
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
        except Exception as exc:  # groundedness is optional: the run is recorded without it
            log.warning("groundedness not read from %s: %s: %s", topic, type(exc).__name__, exc)
        finally:
            await consumer.stop()
        return found
