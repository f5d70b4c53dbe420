"""FeedbackSubmitted out: published before SubmitFeedback answers (the event is the point)."""

from __future__ import annotations

import asyncio

from llmops.inference.v1 import inference_pb2
from llmops_inference.domain.model import Feedback
from llmops_kit import events
from llmops_kit.errors import Unavailable
from llmops_kit.kafka import EventBus

PRODUCER = "inference"


def feedback_event(feedback: Feedback) -> inference_pb2.FeedbackSubmitted:
    return inference_pb2.FeedbackSubmitted(
        envelope=events.make_envelope(PRODUCER, tenant=feedback.tenant),
        request_id=feedback.request_id,
        rating=feedback.rating,
        redacted_comment=feedback.redacted_comment,
    )


class BusFeedbackPublisher:
    def __init__(self, bus: EventBus, timeout: float = 10.0,
                 event_type: events.EventType[inference_pb2.FeedbackSubmitted]
                 = events.FEEDBACK_SUBMITTED) -> None:
        self.bus = bus
        self.timeout = timeout
        self.event_type = event_type

    async def publish(self, feedback: Feedback) -> str:
        event = feedback_event(feedback)
        try:
            await asyncio.wait_for(
                self.bus.publish(self.event_type, event, feedback.tenant.encode()), self.timeout)
        except Exception as exc:  # Kafka down or slow: the caller may retry
            raise Unavailable("BUS_UNAVAILABLE",
                              f"could not publish the feedback: {type(exc).__name__}") from exc
        return event.envelope.event_id
