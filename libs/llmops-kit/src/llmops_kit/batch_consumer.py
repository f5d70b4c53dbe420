"""A raw aiokafka batch consumer for high-volume services, pipelined, with manual commits.

FastStream's batch subscriber parses and decodes every record into a message object before
the service sees it (about 17 us a record); a service that writes tens of thousands of events
a second (observability) uses this consumer instead: `AIOKafkaConsumer.getmany` hands the raw
`ConsumerRecord`s over, and the kit's `Delivery` (decoding, dead letters, retries, isolation of
a bad record) runs on them as it does for every other consumer.

Each batch goes through two steps:
- `prepare(records)`: CPU work without side effects (decoding, building rows);
- `handle(records, prepared)`: the side effects (inserts); True = ack, False = rewind.

One batch is handled while the next is fetched and prepared (one `handle` in flight, so the
event loop prepares batch N+1 while batch N's insert runs in a worker thread). Batches are
settled in order: a batch's offsets (last offset + 1 per partition) are committed only after
its `handle` returned True; on False (or an exception, which is logged, never dropped) every
partition of that batch and of the prepared batch behind it is sought back to its first
record, and both are delivered again. A prepared batch is never handled before the one ahead
of it is settled.

Rebalance (`ConsumerRebalanceListener`): when partitions are revoked the batch in flight is
finished and committed (or not, when it failed), and the prepared batch is dropped; the next
assignment starts every partition at its committed offset, so nothing is lost and nothing
committed is handled twice by this group. Records fetched in an assignment that was revoked
meanwhile are dropped, never handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from llmops_kit.settings import KafkaSettings

log = logging.getLogger(__name__)

P = TypeVar("P")
Records = tuple[ConsumerRecord[Any, Any], ...]
Prepare = Callable[[Records], P]
Handle = Callable[[Records, P], Awaitable[bool]]

# After an unexpected error in the poll loop (not in a handler), wait this long and go on.
LOOP_ERROR_BACKOFF_SECONDS = 1.0


# The garbage collector's thresholds for a process of high-volume batches (relax_gc).
GC_THRESHOLDS = (50_000, 20, 10)


def relax_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """For a process that turns batches of thousands of records into short-lived containers
    (tuples, lists, dicts: no reference cycles): everything alive now (modules, clients,
    caches) leaves the collector's view (`gc.freeze`) and the youngest generation is collected
    every 50,000 allocations instead of 700. With the defaults a 10,000-record batch set off
    dozens of collections that each walked the batch still in hand: measured on the
    observability writer, decoding and mapping took about 40% more CPU. Call once, after
    start-up's imports and connections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


def first_offsets(*batches: Records) -> dict[TopicPartition, int]:
    """The lowest offset per partition over `batches` (where a rewind seeks to)."""
    out: dict[tuple[str, int], int] = {}
    for records in batches:
        for r in records:
            key = (r.topic, r.partition)
            if key not in out or r.offset < out[key]:
                out[key] = r.offset
    return {TopicPartition(*key): offset for key, offset in out.items()}


def next_offsets(records: Records) -> dict[TopicPartition, int]:
    """What to commit once `records` are handled: the last offset + 1 per partition.
    (Plain tuples while scanning: a TopicPartition per record cost more than the rest.)"""
    out: dict[tuple[str, int], int] = {}
    get = out.get
    for r in records:
        key = (r.topic, r.partition)
        if r.offset >= get(key, -1):
            out[key] = r.offset + 1
    return {TopicPartition(*key): offset for key, offset in out.items()}


@dataclass
class _InFlight:
    records: Records
    task: asyncio.Task[bool]


class BatchConsumer(Generic[P]):
    """One consumer of group `group` over `topics` (see the module doc)."""

    def __init__(self, settings: KafkaSettings, topics: Sequence[str], group: str,
                 prepare: Prepare[P], handle: Handle[P], *, client_id: str,
                 max_records: int = 10_000, batch_timeout_ms: int = 200,
                 start_at: Literal["earliest", "latest"] = "earliest",
                 graceful_timeout: float = 30.0) -> None:
        self.settings = settings
        self.topics = tuple(topics)
        self.group = group
        self.prepare = prepare
        self.handle = handle
        self.client_id = client_id
        self.max_records = max_records
        self.batch_timeout_ms = batch_timeout_ms
        self.start_at = start_at
        self.graceful_timeout = graceful_timeout
        # The aiokafka consumer while running (the lag gauge reads its positions).
        self.consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._inflight: _InFlight | None = None
        self._settling = asyncio.Lock()
        # Bumped when partitions are revoked: what was fetched before belongs to the past.
        self._generation = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        consumer = AIOKafkaConsumer(
            **self.settings.client_options(), client_id=self.client_id, group_id=self.group,
            enable_auto_commit=False, auto_offset_reset=self.start_at,
            max_partition_fetch_bytes=self.settings.consumer_fetch_bytes,
            fetch_max_bytes=max(50 * 1024 * 1024, self.settings.consumer_fetch_bytes),
            session_timeout_ms=10_000, heartbeat_interval_ms=2_000,
            # A handler may hold a batch through an outage (the retry window) between polls.
            max_poll_interval_ms=max(300_000, int(self.settings.retry_window_seconds * 2000)),
        )
        consumer.subscribe(self.topics, listener=_Listener(self))
        await consumer.start()
        self.consumer = consumer
        self._task = asyncio.create_task(self._run(), name=f"consume-{self.group}")
        self._task.add_done_callback(self._loop_ended)

    async def stop(self) -> None:
        """Lets the batch in flight finish and settle (up to `graceful_timeout`), then leaves
        the group; a batch cut short is not committed, so it is delivered again."""
        self._stopping = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.graceful_timeout)
            except TimeoutError:
                log.warning("%s: batch not finished in %.0fs; stopping without committing it",
                            self.group, self.graceful_timeout)
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            await consumer.stop()

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: consumer loop ended", self.group, exc_info=task.exception())

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._stopping:
                try:
                    await self._step()
                except Exception:
                    log.exception("%s: consumer loop failed; going on", self.group)
                    await asyncio.sleep(LOOP_ERROR_BACKOFF_SECONDS)
        finally:
            # Stopping (or cancelled): the batch in flight settles; nothing prepared is handled.
            await asyncio.shield(self._settle())

    async def _step(self) -> None:
        assert self.consumer is not None
        generation = self._generation
        fetched = await self.consumer.getmany(timeout_ms=self.batch_timeout_ms,
                                              max_records=self.max_records)
        if generation != self._generation or self._stopping:
            return  # partitions revoked while fetching: redelivered from the committed offsets
        records: Records = tuple(r for part in fetched.values() for r in part)
        if not records:
            if self._inflight is not None and self._inflight.task.done():
                await self._settle()
            return
        try:
            prepared = self.prepare(records)  # while the batch in flight is being handled
        except Exception:
            # Fetched but not handed over: back to its first records, or a later commit
            # would skip it.
            log.exception("%s: preparing a batch of %d records failed; it comes again",
                          self.group, len(records))
            if await self._settle(behind=records) is not False:
                self._seek_back(first_offsets(records))
            await asyncio.sleep(LOOP_ERROR_BACKOFF_SECONDS)
            return
        # A failed batch ahead is rewound together with this one (unhandled).
        settled = await self._settle(behind=records)
        if generation != self._generation or settled is False:
            return  # revoked meanwhile (the new assignment starts at the committed offsets)
        if self._stopping:
            self._seek_back(first_offsets(records))
            return
        self._inflight = _InFlight(records, asyncio.create_task(self._handle(records, prepared)))

    async def _handle(self, records: Records, prepared: P) -> bool:
        try:
            return await self.handle(records, prepared)
        except Exception:
            log.exception("%s: batch of %d records failed; rewinding it", self.group,
                          len(records))
            return False

    async def _settle(self, behind: Records = ()) -> bool | None:
        """Waits for the batch in flight; commits its offsets, or seeks back to its start
        (and to the start of `behind`, the batch fetched after it, where that is earlier).
        None when nothing was in flight; else whether it succeeded."""
        async with self._settling:
            inflight, self._inflight = self._inflight, None
            if inflight is None:
                return None
            try:
                ok = await inflight.task
            except asyncio.CancelledError:
                ok = False
            if ok:
                await self._commit(next_offsets(inflight.records))
                return True
            self._seek_back(first_offsets(inflight.records, behind))
            return False

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        consumer = self.consumer
        assert consumer is not None
        owned = consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except Exception:
            # Refused after a rebalance (the new owner starts from the last commit, so the
            # batch is delivered again there), or the broker away: the next batch's commit
            # covers these offsets too.
            log.warning("%s: could not commit a batch; the next commit covers it, else it is "
                        "delivered again", self.group, exc_info=True)

    def _seek_back(self, offsets: dict[TopicPartition, int]) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        owned = consumer.assignment()
        for tp, offset in offsets.items():
            if tp in owned:  # a partition no longer ours restarts from its commit elsewhere
                consumer.seek(tp, offset)

    async def _revoked(self) -> None:
        self._generation += 1
        await self._settle()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: BatchConsumer[Any]) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.owner._revoked()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None
