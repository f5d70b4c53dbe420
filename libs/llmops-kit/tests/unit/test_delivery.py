"""The delivery rules of one batch (llmops_kit.delivery), with a fake bus."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NotEnoughReplicasError

from llmops.ingestion.v1 import events_pb2
from llmops_kit import events
from llmops_kit.dead_letters import HANDLER_FAILED, RECORD_TOO_LARGE
from llmops_kit.delivery import Batch, DeadLetterFailed, Delivery, Received, is_transient
from llmops_kit.errors import InvalidArgument, PoisonMessage, Unavailable
from llmops_kit.settings import KafkaSettings

pytestmark = pytest.mark.unit

ET = events.DOCUMENT_DELETED


class FakeBus:
    """What Delivery needs of an EventBus: dead letters, health, settings."""

    def __init__(self, dlq_failures: int = 0, max_handler_failures: int = 3) -> None:
        self.settings = KafkaSettings(max_record_bytes=64 * 1024,
                                      max_handler_failures=max_handler_failures)
        self.dead: list[tuple[int, str]] = []
        self.dlq_failures = dlq_failures
        self.dlq_attempts = 0
        self.health: list[bool] = []
        self.probe_up = True
        self.stopping = False

    async def dead_letter(self, record: Any, error: PoisonMessage, group: str) -> None:
        self.dlq_attempts += 1
        if self.dlq_failures > 0:
            self.dlq_failures -= 1
            raise DeadLetterFailed("dlq topic not writable")
        self.dead.append((record.offset, error.reason))

    async def report(self, group: str, *, healthy: bool) -> None:
        if not self.health or self.health[-1] != healthy:
            self.health.append(healthy)

    async def dependencies_healthy(self) -> bool:
        return self.probe_up


def _record(offset: int, value: bytes) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord("t", 0, offset, 0, 0, b"k", value, None, 1, len(value), [])


def _good(offset: int) -> ConsumerRecord[Any, Any]:
    ev = events_pb2.DocumentDeleted(envelope=events.make_envelope("t", tenant="acme"),
                                    document_id=f"doc-{offset}")
    return _record(offset, ev.SerializeToString())


class Recorder:
    """A handler that records what it handled and fails as told."""

    def __init__(self) -> None:
        self.handled: list[str] = []
        self.calls = 0
        self.fail_with: dict[str, BaseException] = {}  # document id -> error while present
        self.fail_times: int | None = None  # None: always

    async def __call__(self, batch: Batch[events_pb2.DocumentDeleted]) -> None:
        self.calls += 1
        for item in batch.items:
            exc = self.fail_with.get(item.event.document_id)
            if exc is not None and (self.fail_times is None or self.fail_times > 0):
                if self.fail_times is not None:
                    self.fail_times -= 1
                raise exc
        self.handled.extend(item.event.document_id for item in batch.items)


def _delivery(bus: FakeBus, handler: Recorder, window: float = 30.0) -> Delivery[Any]:
    d: Delivery[Any] = Delivery(bus, ET, "g", handler, max_retry_seconds=window)  # type: ignore[arg-type]
    d.first_delay = d.max_delay = 0.001
    return d


async def test_a_failing_dead_letter_publish_retries_the_whole_batch_then_acks() -> None:
    bus, handler = FakeBus(dlq_failures=4), Recorder()
    records = (_good(0), _record(1, b"\x08\x96\x01garbage"), _good(2))
    assert await _delivery(bus, handler).run(records) is True
    assert bus.dlq_attempts == 5 and bus.dead == [(1, "MALFORMED_PROTOBUF")]
    assert handler.handled == ["doc-0", "doc-2"]  # once each, only after the DLQ took the poison
    assert bus.health == [False, True]  # degraded while the DLQ could not be written


async def test_a_dead_letter_publish_failing_past_the_window_rewinds() -> None:
    bus, handler = FakeBus(dlq_failures=10**6), Recorder()
    records = (_good(0), _record(1, b"\x08\x96\x01garbage"))
    assert await _delivery(bus, handler, window=0.05).run(records) is False  # nack
    assert handler.handled == [] and bus.dead == []


async def test_an_outage_is_retried_without_limit_and_never_dead_lettered() -> None:
    bus, handler = FakeBus(max_handler_failures=2), Recorder()
    handler.fail_with["doc-1"] = Unavailable("WEAVIATE_DOWN", "connection refused")
    handler.fail_times = 25  # far more than max_handler_failures
    assert await _delivery(bus, handler).run((_good(0), _good(1))) is True
    assert bus.dead == []
    assert handler.handled == ["doc-0", "doc-1"]
    assert bus.health == [False, True]


async def test_any_failure_while_a_probe_reports_down_counts_as_an_outage() -> None:
    bus, handler = FakeBus(max_handler_failures=2), Recorder()
    bus.probe_up = False
    handler.fail_with["doc-0"] = RuntimeError("weird client error")
    handler.fail_times = 6
    assert await _delivery(bus, handler).run((_good(0),)) is True
    assert bus.dead == [] and handler.handled == ["doc-0"]
    assert bus.health == [False, True]


async def test_a_record_failing_n_times_is_isolated_and_dead_lettered() -> None:
    bus, handler = FakeBus(max_handler_failures=3), Recorder()
    handler.fail_with["doc-1"] = InvalidArgument("BAD", "cannot handle it")
    records = (_good(0), _good(1), _good(2))
    delivery = _delivery(bus, handler)
    assert await delivery.run(records) is True
    assert bus.dead == [(1, HANDLER_FAILED)]
    # The good ones exactly once, in order, although the first batch attempt failed.
    assert handler.handled == ["doc-0", "doc-2"]
    # one batch attempt, doc-0 alone, doc-1 three times, doc-2 alone
    assert handler.calls == 1 + 1 + 3 + 1
    assert delivery.failures == {}
    assert bus.health == [True]


async def test_failure_counts_survive_a_rewind() -> None:
    bus, handler = FakeBus(max_handler_failures=4), Recorder()
    handler.fail_with["doc-0"] = ValueError("bug")
    delivery = _delivery(bus, handler, window=0.0)
    assert await delivery.run((_good(0),)) is False  # the window is spent: rewound
    assert await delivery.run((_good(0),)) is False
    assert delivery.failures == {("t", 0, 0): 2}
    assert await delivery.run((_good(0),)) is False
    assert await delivery.run((_good(0),)) is True
    assert bus.dead == [(0, HANDLER_FAILED)] and handler.handled == []


async def test_a_record_over_the_size_limit_is_dead_lettered_not_handled() -> None:
    bus, handler = FakeBus(), Recorder()
    assert await _delivery(bus, handler).run((_record(0, b"x" * 70 * 1024), _good(1))) is True
    assert bus.dead == [(0, RECORD_TOO_LARGE)]
    assert handler.handled == ["doc-1"]


async def test_a_stopping_bus_rewinds_instead_of_waiting() -> None:
    bus, handler = FakeBus(), Recorder()
    handler.fail_with["doc-0"] = Unavailable("DOWN", "down")
    bus.stopping = True
    assert await _delivery(bus, handler).run((_good(0),)) is False


async def test_a_retried_batch_dead_letters_each_record_once() -> None:
    bus = FakeBus()
    done: set[tuple[str, int, int]] = set()
    record = _good(8)
    received = Received(events.decode(ET, record.value), record)
    for _attempt in range(3):  # each attempt gets a new Batch sharing the batch's progress
        await Batch([received], bus, "g", done).dead_letter(  # type: ignore[arg-type]
            received, PoisonMessage("BAD", "no"))
    assert bus.dead == [(8, "BAD")] and done == {("t", 0, 8)}


class _RpcError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata())


class OperationalError(Exception):  # named like SQLAlchemy's
    pass


class WeaviateGRPCUnavailableError(Exception):  # named like the Weaviate client's
    pass


@pytest.mark.parametrize(("exc", "transient"), [
    (Unavailable("X", "down"), True),
    (ConnectionRefusedError(), True),
    (TimeoutError(), True),
    (KafkaConnectionError(), True),
    (KafkaTimeoutError(), True),
    (NotEnoughReplicasError(), True),
    (_RpcError(grpc.StatusCode.UNAVAILABLE), True),
    (_RpcError(grpc.StatusCode.INVALID_ARGUMENT), False),
    (OperationalError("database is locked"), True),
    (WeaviateGRPCUnavailableError("down"), True),
    (ValueError("bad value"), False),
    (InvalidArgument("BAD", "no"), False),
    (KeyError("x"), False),
])
def test_transient_failures_are_told_from_deterministic_ones(
    exc: BaseException, transient: bool
) -> None:
    assert is_transient(exc) is transient


def test_a_cause_that_is_an_outage_makes_the_failure_transient() -> None:
    try:
        try:
            raise ConnectionResetError("peer went away")
        except ConnectionResetError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as exc:
        assert is_transient(exc)


# ------------------------------------------------------------------ decoded ahead (prepare)


class Preparer(Recorder):
    """A handler with a prepare_items hook: records what it was handed as `prepared`."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared_seen: list[Any] = []

    def prepare_items(self, items: list[Received[Any]]) -> list[str]:
        return [i.event.document_id for i in items]

    async def __call__(self, batch: Batch[events_pb2.DocumentDeleted]) -> None:
        self.prepared_seen.append(batch.prepared)
        await super().__call__(batch)


def _preparing(bus: FakeBus, handler: Preparer) -> Delivery[Any]:
    d: Delivery[Any] = Delivery(bus, ET, "g", handler, max_retry_seconds=30.0,  # type: ignore[arg-type]
                                prepare_items=handler.prepare_items)
    d.first_delay = d.max_delay = 0.001
    return d


async def test_prepare_decodes_ahead_without_dead_lettering_then_run_dead_letters() -> None:
    bus, handler = FakeBus(), Preparer()
    delivery = _preparing(bus, handler)
    records = (_good(0), _record(1, b"\x08\x96\x01garbage"), _good(2))
    prepared = delivery.prepare(records)
    assert bus.dead == [] and bus.dlq_attempts == 0  # no side effect before the batch's turn
    assert [r.offset for r, _ in prepared.poison] == [1]
    assert prepared.payload == ["doc-0", "doc-2"]
    assert await delivery.run(records, prepared) is True
    assert bus.dead == [(1, "MALFORMED_PROTOBUF")]
    assert handler.handled == ["doc-0", "doc-2"]
    assert handler.prepared_seen == [["doc-0", "doc-2"]]  # the hook's work, handed over


async def test_a_retry_of_part_of_a_prepared_batch_gets_no_prepared_payload() -> None:
    bus, handler = FakeBus(max_handler_failures=1), Preparer()
    handler.fail_with = {"doc-1": InvalidArgument("BAD", "always")}
    delivery = _preparing(bus, handler)
    records = (_good(0), _good(1), _good(2))
    assert await delivery.run(records, delivery.prepare(records)) is True
    # The whole batch once with the payload, then one record at a time without it.
    assert handler.prepared_seen[0] == ["doc-0", "doc-1", "doc-2"]
    assert handler.prepared_seen[1:] == [None] * (len(handler.prepared_seen) - 1)
    assert handler.handled == ["doc-0", "doc-2"] and bus.dead == [(1, HANDLER_FAILED)]


async def test_a_failing_prepare_hook_leaves_the_batch_to_the_handler() -> None:
    bus, handler = FakeBus(), Preparer()

    def broken(items: list[Received[Any]]) -> Any:
        raise KeyError("a bug in the hook")

    handler.prepare_items = broken  # type: ignore[method-assign]
    delivery = _preparing(bus, handler)
    records = (_good(0), _good(1))
    prepared = delivery.prepare(records)
    assert prepared.payload is None and len(prepared.items) == 2
    assert await delivery.run(records, prepared) is True
    assert handler.handled == ["doc-0", "doc-1"] and handler.prepared_seen == [None]
