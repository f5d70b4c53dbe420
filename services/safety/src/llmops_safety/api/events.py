"""SafetyVerdictIssued: built from a check result and published in the background.

Publishing waits for the broker's acks, which would stall CheckText for the producer's
whole timeout while Kafka is down. So each event is published in its own task; the RPC
returns at once. A failed or timed-out publish is logged and counted, never raised; with
too many publishes in flight, new events are dropped (and counted) instead of piling up.
The counters are reported by GetInfo.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

from llmops.safety.v1 import safety_pb2
from llmops_kit import events
from llmops_kit.context import current_tenant
from llmops_safety.api.convert import DIRECTION_TO_PB, VERDICT_TO_PB, findings_pb
from llmops_safety.domain.model import CheckResult, Direction

log = logging.getLogger(__name__)

PRODUCER = "safety"


class Publishes(Protocol):
    async def publish(self, event_type: events.EventType[safety_pb2.SafetyVerdictIssued],
                      event: safety_pb2.SafetyVerdictIssued, key: bytes) -> None: ...


def verdict_event(result: CheckResult, direction: Direction, text_chars: int,
                  excerpt: str) -> safety_pb2.SafetyVerdictIssued:
    """The event: scores, categories and spans only; the excerpt is already fully redacted."""
    return safety_pb2.SafetyVerdictIssued(
        envelope=events.make_envelope(PRODUCER),
        direction=DIRECTION_TO_PB[direction],
        verdict=VERDICT_TO_PB[result.verdict],
        scores=result.analysis.scores,
        findings=findings_pb(result.analysis.findings),
        toxicity_backend=result.analysis.toxicity_backend,
        reasons=list(result.reasons),
        text_chars=text_chars,
        redacted_excerpt=excerpt,
    )


@dataclass
class PublishStats:
    published: int = 0
    failed: int = 0
    dropped: int = 0


class BackgroundPublisher:
    """VerdictPublisher over the kit's EventBus (see module doc)."""

    def __init__(self, bus: Publishes, event_type: events.EventType[safety_pb2.SafetyVerdictIssued]
                 = events.SAFETY_VERDICT_ISSUED, timeout: float = 10.0, max_in_flight: int = 1000
                 ) -> None:
        self.bus = bus
        self.event_type = event_type
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.stats = PublishStats()
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, result: CheckResult, direction: Direction, text_chars: int,
               excerpt: str) -> None:
        if len(self._tasks) >= self.max_in_flight:
            self.stats.dropped += 1
            log.warning("verdict event dropped: %d publishes in flight (is Kafka down?)",
                        len(self._tasks), extra={"events_dropped": self.stats.dropped})
            return
        event = verdict_event(result, direction, text_chars, excerpt)
        # The task copies the request's context, so logs keep its tenant and trace id.
        task = asyncio.create_task(self._publish(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, event: safety_pb2.SafetyVerdictIssued) -> None:
        key = (event.envelope.tenant_id or current_tenant() or "").encode()
        try:
            await asyncio.wait_for(self.bus.publish(self.event_type, event, key), self.timeout)
        except Exception as exc:
            self.stats.failed += 1
            log.warning("verdict event not published: %r", exc,
                        extra={"events_failed": self.stats.failed,
                               "event_id": event.envelope.event_id})
        else:
            self.stats.published += 1

    async def drain(self, timeout: float = 5.0) -> None:
        """Waits (bounded) for publishes in flight, e.g. before the bus stops."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), timeout)
