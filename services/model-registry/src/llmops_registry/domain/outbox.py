"""Publishes what the outbox holds, in order, after the change was committed.

A write commits its change and its event together, then flushes the outbox (bounded wait): a
broker that is down never fails or rolls back an acknowledged change. What is still unpublished
is retried by a background loop and on every start. Delivery is at least once: an event whose
acknowledgement was lost is published again with the same event id (consumers de-duplicate on
it), and every alias/label change carries a sequence so a late one cannot undo a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from llmops_registry.ports import EventPublisher, Outbox

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(self, outbox: Outbox, publisher: EventPublisher, *, batch_size: int = 100,
                 flush_timeout: float = 5.0, interval: float = 5.0) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.batch_size = batch_size
        self.flush_timeout = flush_timeout
        self.interval = interval
        # One drain at a time per process: events leave in outbox order.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def drain(self) -> int:
        """Publishes every pending event, oldest first; stops at the first failure (raises)."""
        published = 0
        async with self._lock:
            while entries := await self.outbox.pending_events(self.batch_size):
                for entry in entries:
                    try:
                        await self.publisher.publish(entry)
                    except Exception as exc:
                        await self.outbox.mark_failed(entry.id, f"{type(exc).__name__}: {exc}")
                        raise
                    await self.outbox.mark_published([entry.id])
                    published += 1
        return published

    async def flush(self) -> bool:
        """drain() within flush_timeout; False (logged, left for the retry loop) on failure."""
        try:
            await asyncio.wait_for(self.drain(), self.flush_timeout)
            return True
        except Exception as exc:
            log.warning("events not published yet, will retry: %s: %s", type(exc).__name__, exc)
            return False

    async def _loop(self) -> None:
        delay = self.interval
        while True:
            ok = await self.flush()
            # Back off while the bus is down, up to a minute; back to normal once it is up.
            delay = self.interval if ok else min(delay * 2, 60.0)
            await asyncio.sleep(delay)

    def start(self) -> None:
        """Publishes what a previous run left behind, then keeps retrying in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
