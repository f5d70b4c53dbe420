"""Events per second from Kafka into ClickHouse (chDB), against a bare chDB insert of the same
rows, and the writer's lag under load.

1. Produces N small SafetyVerdictIssued events (an allowed input, two scores, no findings) to
   the platform's topic on the shared broker, for a tenant of this run.
2. Platform: the observability path (observability_path.subscribe_writer: the kit's batch
   consumer, decoding, mapping to `events` + `safety_verdicts` rows, one insert per table per
   batch) drains exactly those records into a fresh chDB, through a new consumer group whose
   offsets are set to where this run's records begin. Timed from the first insert's start to
   the insert that makes every record visible (group join and topic metadata excluded; they
   are printed apart).
3. Bare: the same rows (mapped before the clock starts), inserted with the same client in
   batches of the same size (two rows per event on both sides, `events` and
   `safety_verdicts`; "events/s" counts events), and once more as one insert per table (the
   store's ceiling). Both sides: one untimed warm-up round (the
   first --warmup-events), then --repeats rounds, tables truncated before each.
4. Lag: a separate process produces at a steady rate (default: 80% of the platform's median
   rate) for --lag-seconds while the path runs; the lag of a row is the time from its event's
   occurred_at (set just before it is sent) to the return of the insert that holds it.

    uv run --frozen python bench/observability_throughput.py [--events 100000] [--repeats 3]
        [--max-records N (default: the service's batch)] [--lag-seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from bench_common import percentile
from clickhouse_connect.driver.client import Client
from observability_path import TOPIC, insert, map_rows, subscribe_writer, use_service

from llmops.safety.v1 import safety_pb2
from llmops_cli import stack
from llmops_kit import events
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_observability.clickhouse import connect, migrate
from llmops_observability.settings import Settings as ObservabilitySettings

TARGET_EVENTS_PER_S = 50_000


def verdict(tenant: str, i: int) -> safety_pb2.SafetyVerdictIssued:
    event = safety_pb2.SafetyVerdictIssued(
        envelope=events.make_envelope("safety", tenant=tenant, event_id=f"{tenant}-{i}",
                                      trace_id=f"{i:032x}"),
        direction=safety_pb2.DIRECTION_INPUT, verdict=safety_pb2.VERDICT_ALLOW,
        scores={"toxicity": 0.01, "injection": 0.02}, toxicity_backend="lexicon",
        text_chars=120)
    return event


class Meter:
    """Wraps the store's client: counts rows per insert, marks the first insert's start and when
    `expected` distinct rows of `table` are in, and samples each row's lag (insert return -
    ts)."""

    def __init__(self, client: Client, table: str = "safety_verdicts") -> None:
        self._client = client
        self.table = table
        self.expected = 0
        self.tenant = ""
        self.rows = 0
        self.inserts = 0  # inserts into `table` (one per consumer batch)
        self.insert_s = 0.0  # seconds inside those inserts
        self.first_start: float | None = None
        # CPU seconds of this process (every thread: loop, inserts, chDB) at the same marks:
        # what an event costs, whatever the machine's other load.
        self.first_cpu = self.done_cpu = 0.0
        self.done_at: float | None = None
        self.rows_at_done = 0
        self.done = asyncio.Event()
        self.lags: list[float] = []
        self.sample_every = 0  # 0: no lag sampling
        self._loop = asyncio.get_running_loop()

    def unique(self) -> int:
        # A batch redelivered after a rebalance is inserted twice, and other tests may publish
        # on the topic meanwhile: only this run's distinct ids count.
        return int(self._client.query(
            f"SELECT uniqExact(id) FROM {self.table} WHERE tenant = {{t:String}}",
            parameters={"t": self.tenant}).result_rows[0][0])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def insert(self, table: str, data: Any, column_names: Any = None, **kw: Any) -> Any:
        if self.first_start is None:
            self.first_start = time.perf_counter()
            self.first_cpu = time.process_time()
        began = time.perf_counter()
        out = self._client.insert(table, data, column_names=column_names, **kw)
        if table == self.table:
            self.inserts += 1
            self.insert_s += time.perf_counter() - began
        if table == self.table:
            returned = time.time()
            ts = data[list(column_names).index("ts")]
            if self.sample_every:
                # ts: epoch ms (the service's rows) or a datetime (the stand-in's)
                self.lags += [returned - (t / 1000 if isinstance(t, int) else t.timestamp())
                              for t in ts[::self.sample_every]]
            self.rows += len(ts)
            if self.expected and self.rows >= self.expected and self.done_at is None \
                    and self.unique() >= self.expected:
                self.done_at = time.perf_counter()
                self.done_cpu = time.process_time()
                self.rows_at_done = self.rows
                self._loop.call_soon_threadsafe(self.done.set)
        return out


async def partition_offsets(kafka: KafkaSettings) -> dict[TopicPartition, int]:
    # Subscribed (without a group) so start() loads the topic's metadata.
    consumer = AIOKafkaConsumer(TOPIC, **kafka.client_options())
    await consumer.start()
    try:
        parts = [TopicPartition(TOPIC, p) for p in sorted(consumer.partitions_for_topic(TOPIC)
                                                         or ())]
        return dict(await consumer.end_offsets(parts))
    finally:
        await consumer.stop()


async def set_group_offsets(kafka: KafkaSettings, group: str,
                            offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def produce(kafka: KafkaSettings, payloads: list[bytes], keys: list[bytes]) -> float:
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", linger_ms=20,
                                max_batch_size=512 * 1024, enable_idempotence=True)
    await producer.start()
    start = time.perf_counter()
    try:
        for i in range(0, len(payloads), 20_000):
            futures = [await producer.send(TOPIC, p, key=k)
                       for p, k in zip(payloads[i:i + 20_000], keys[i:i + 20_000], strict=True)]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - start


def truncate(client: Client) -> None:
    for table in ("events", "safety_verdicts"):
        client.command(f"TRUNCATE TABLE {table}")


async def platform_round(kafka: KafkaSettings, meter: Meter, start: dict[TopicPartition, int],
                         expected: int, args: argparse.Namespace) -> tuple[float, float, int]:
    """(seconds draining, seconds from consumer start to its first insert, rows inserted more
    than once)."""
    group = f"bench-obs-{uuid.uuid4().hex[:10]}"
    await set_group_offsets(kafka, group, start)
    meter.expected, meter.rows, meter.first_start, meter.done_at = expected, 0, None, None
    meter.inserts, meter.insert_s = 0, 0.0
    meter.done.clear()
    bus = EventBus(kafka, client_id=group)
    subscribe_writer(bus, meter, group, args.max_records, args.batch_timeout_ms)  # type: ignore[arg-type]
    began = time.perf_counter()
    await bus.start()
    try:
        await asyncio.wait_for(meter.done.wait(), timeout=args.round_timeout)
    finally:
        await bus.stop()
    assert meter.first_start is not None and meter.done_at is not None
    return meter.done_at - meter.first_start, meter.first_start - began, meter.rows_at_done - expected


def bare_round(client: Client, batches: list[list[Any]]) -> float:
    start = time.perf_counter()
    for tables in batches:
        insert(client, tables)
    return time.perf_counter() - start


def paced_producer(bootstrap: dict[str, Any], tenant: str, rate: float, seconds: float) -> None:
    """In its own process: `rate` events/s for `seconds`, occurred_at stamped at send time."""
    async def run() -> None:
        producer = AIOKafkaProducer(**bootstrap, acks="all", linger_ms=5)
        await producer.start()
        sent, t0 = 0, time.perf_counter()
        try:
            while (elapsed := time.perf_counter() - t0) < seconds:
                due = int(elapsed * rate) - sent
                for _ in range(due):
                    event = verdict(tenant, sent)
                    await producer.send(TOPIC, event.SerializeToString(),
                                        key=event.envelope.event_id.encode())
                    sent += 1
                await asyncio.sleep(0.005)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run())


async def lag_round(kafka: KafkaSettings, meter: Meter, rate: float,
                    args: argparse.Namespace) -> dict[str, float]:
    tenant = f"bench-lag-{uuid.uuid4().hex[:8]}"
    group = f"bench-obs-lag-{uuid.uuid4().hex[:10]}"
    await set_group_offsets(kafka, group, await partition_offsets(kafka))
    meter.expected, meter.rows, meter.lags, meter.sample_every = 0, 0, [], 10
    bus = EventBus(kafka, client_id=group)
    subscribe_writer(bus, meter, group, args.max_records, args.batch_timeout_ms)  # type: ignore[arg-type]
    await bus.start()
    await asyncio.sleep(3)  # joined and polling before the load begins
    proc = multiprocessing.get_context("spawn").Process(
        target=paced_producer, args=(kafka.client_options(), tenant, rate, args.lag_seconds))
    proc.start()
    await asyncio.to_thread(proc.join)
    await asyncio.sleep(2)  # the tail of the load reaches the store
    await bus.stop()
    lags = [x * 1000 for x in meter.lags] or [float("nan")]
    meter.sample_every = 0
    return {"rate_events_per_s": rate, "rows": meter.rows,
            "achieved_events_per_s": meter.rows / args.lag_seconds, "lag_p50_ms": percentile(lags, 50),
            "lag_p95_ms": percentile(lags, 95), "lag_p99_ms": percentile(lags, 99),
            "lag_max_ms": max(lags)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    # 100,000 keeps a run under about 3 minutes on the shared 2-core machine at the service's
    # default batch size; the figures of record also use --events 200000.
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup-events", type=int, default=20_000)
    ap.add_argument("--max-records", type=int,
                    default=ObservabilitySettings.model_fields["batch_max_records"].default)
    ap.add_argument("--batch-timeout-ms", type=int, default=200)
    ap.add_argument("--lag-seconds", type=float, default=10.0)
    ap.add_argument("--lag-rate", type=float, default=0.0,
                    help="events/s of the lag phase (default: 80%% of the platform median)")
    ap.add_argument("--round-timeout", type=float, default=120.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    print(f"load average before the run (2-core machine, shared): "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    path = ("the observability service's consumer and writer" if use_service() else
            "the stand-in in observability_path.py (no service consumer in this checkout)")
    print(f"path: {path}; --max-records {args.max_records}", flush=True)
    await asyncio.to_thread(stack.infra, "kafka", "start")
    kafka = KafkaSettings()
    await ensure_topics(kafka, [TOPIC])
    folder = tempfile.mkdtemp(prefix="bench-obs-chdb-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    client = connect(f"chdb://{folder}")
    migrate(client)
    meter = Meter(client)
    tenant = meter.tenant = f"bench-{uuid.uuid4().hex[:8]}"
    built = [verdict(tenant, i) for i in range(args.events)]
    payloads = [e.SerializeToString() for e in built]
    keys = [e.envelope.event_id.encode() for e in built]
    start = await partition_offsets(kafka)
    produce_s = await produce(kafka, payloads, keys)
    end = await partition_offsets(kafka)
    in_range = sum(end[tp] - start.get(tp, 0) for tp in end)
    print(f"produced {args.events} events ({sum(map(len, payloads)) / args.events:.0f} B each) "
          f"in {produce_s:.1f}s ({args.events / produce_s:,.0f}/s); {in_range} records in range "
          f"(others' concurrent events on the topic count too)", flush=True)

    step = args.max_records
    batches = [map_rows(built[i:i + step], [len(p) for p in payloads[i:i + step]])
               for i in range(0, len(built), step)]
    platform, bare, ratios, joins = [], [], [], []
    for r in range(args.repeats + 1):
        # The warm-up round drains and inserts only the first --warmup-events (code paths,
        # connections and the engine warm; the rest of the range is left unread).
        label = "warm-up" if r == 0 else f"round {r}"
        n = min(args.warmup_events, args.events) if r == 0 else args.events
        expected = n
        await asyncio.to_thread(truncate, client)
        drain_s, join_s, again = await platform_round(kafka, meter, start, expected, args)
        inserts, insert_s = meter.inserts, meter.insert_s
        visible = client.query("SELECT count() FROM safety_verdicts FINAL WHERE tenant = "
                               "{t:String}", parameters={"t": tenant}).result_rows[0][0]
        await asyncio.to_thread(truncate, client)
        cpu0 = time.process_time()
        bare_s = await asyncio.to_thread(bare_round, client, batches[:-(-n // step)])
        bare_cpu = time.process_time() - cpu0
        platform_cpu = meter.done_cpu - meter.first_cpu
        print(f"{label}: platform {expected / drain_s:,.0f} events/s ({drain_s:.2f}s, start to "
              f"first insert {join_s:.2f}s, {again} extra rows (redelivered, or others' on the "
              f"topic), {visible} of {n} visible; {inserts} batches of {n / max(inserts, 1):,.0f} "
              f"on average, {insert_s:.2f}s inside the inserts of {meter.table}; CPU "
              f"{1e6 * platform_cpu / n:.1f} us/event), bare insert "
              f"{n / bare_s:,.0f} events/s ({bare_s:.2f}s, CPU {1e6 * bare_cpu / n:.1f} us/event), "
              f"ratio {(expected / drain_s) / (n / bare_s):.3f}", flush=True)
        if r == 0:
            continue
        if visible != args.events:
            raise SystemExit(f"{label}: {visible} rows visible, expected {args.events}")
        platform.append(args.events / drain_s)
        bare.append(args.events / bare_s)
        ratios.append(bare_s / drain_s)
        joins.append(join_s)

    # The store's ceiling: every row in one insert per table.
    await asyncio.to_thread(truncate, client)
    whole = map_rows(built, [len(p) for p in payloads])
    one_s = await asyncio.to_thread(bare_round, client, [whole])
    print(f"bare insert of all {args.events} events in one insert per table: "
          f"{args.events / one_s:,.0f} events/s ({one_s:.2f}s)", flush=True)
    await asyncio.to_thread(truncate, client)
    rate = args.lag_rate or 0.8 * statistics.median(platform)
    lag = await lag_round(kafka, meter, rate, args)
    result = {
        "path": "service" if use_service() else "stand-in",
        "events": args.events, "max_records": args.max_records, "repeats": args.repeats,
        "median_platform_events_per_s": round(statistics.median(platform)),
        "median_bare_events_per_s": round(statistics.median(bare)),
        # Paired: each round's platform and bare runs share the machine's load of the moment.
        "median_ratio": round(statistics.median(ratios), 3),
        "median_start_to_first_insert_s": round(statistics.median(joins), 2),
        "bare_single_insert_events_per_s": round(args.events / one_s),
        "target_events_per_s": TARGET_EVENTS_PER_S,
        "target_met": statistics.median(platform) >= TARGET_EVENTS_PER_S,
        **{k: round(v, 1) for k, v in lag.items()},
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result) if args.json else
          f"median: platform {result['median_platform_events_per_s']:,} events/s, bare "
          f"{result['median_bare_events_per_s']:,} events/s, ratio {result['median_ratio']} "
          f"(median of the rounds' ratios) "
          f"(target >= {TARGET_EVENTS_PER_S:,} events/s: "
          f"{'met' if result['target_met'] else 'NOT met'}); writer lag at "
          f"{result['rate_events_per_s']:,.0f} events/s asked, "
          f"{result['achieved_events_per_s']:,.0f} written: p50 {result['lag_p50_ms']} ms, "
          f"p95 {result['lag_p95_ms']} ms, p99 {result['lag_p99_ms']} ms, "
          f"max {result['lag_max_ms']} ms ({result['rows']:,.0f} rows); one insert of all rows "
          f"{result['bare_single_insert_events_per_s']:,} events/s; load average "
          f"{result['load_average_1m_after']}")


if __name__ == "__main__":
    asyncio.run(main())
