"""Forethought benchmark: core speed, worker throughput, trigger latency and state size.

Run from the repository root::

    .venv/bin/python benchmarks/bench.py                  # 100k events, 2000 customers
    .venv/bin/python benchmarks/bench.py --events 20000 --json bench.json
    .venv/bin/python benchmarks/bench.py --profile        # also cProfile the in-process worker path
    .venv/bin/python benchmarks/bench.py --skip-kafka     # parts 1 and 5 only, no broker
    .venv/bin/python benchmarks/bench.py --set FORETHOUGHT_BATCH_WITHIN_SECONDS=0.2  # try a setting

The defaults take about 3-4 minutes on 2 cores (longer when other processes compete).

Broker: ``--bootstrap`` (default ``$FORETHOUGHT_KAFKA_BOOTSTRAP``); when neither is given the
script starts a :class:`~forethought.ops.kafka_local.LocalBroker` (Kafka 3.9.1, JVM, no Docker)
and stops it at the end. Every worker and broker it starts is stopped in ``finally`` blocks, also
on Ctrl-C and SIGTERM. Topics get a unique prefix (``b<hex>.``); on an external broker they are
deleted at the end (best effort).

What is measured (one run prints everything in one table; ``--json FILE`` writes it too):

1. **Core, one core.** ``--events`` realistic events (~75 % clickstream, ~20 % usage, ~5 % errors;
   customers drawn with a mild Zipf skew, weight ∝ 1/sqrt(rank); strictly increasing event times
   over the last 300 s) are built once. Timed with ``time.perf_counter``, median of 3 repetitions,
   each from empty state (a ``dict`` of one ``CustomerState`` per customer):
   ``process()`` over already-decoded pydantic events; ``decode_event`` alone over the raw JSON
   bytes; decode + process; and ``BatchProcessor.handle + commit`` (the worker's in-process path:
   decode, murmur2 partition check, per-batch state (de)serialisation, metrics; batches of 500; a
   dict as the table: no Kafka, no Faust).
2. **Worker end to end.** The same events are produced (keyed by customer_id, topic per kind,
   acks=all, linger 20 ms) *before* the worker starts; then the real worker runs as a child process
   (``running_worker``) with the integration tests' engine settings (1-minute buckets,
   BURST_MIN_ERRORS=5, ...) and ``FORETHOUGHT_LOG_LEVEL=WARNING``. Its ``/metrics`` are polled every
   0.1 s; throughput = (count at end - count at the first non-zero poll) / (time between), where
   count = sum of ``forethought_events_in_total``. It ends when every event is counted (timeout
   300 s: the partial figure is reported). The worker's own histograms then tell where its wall time
   went: inside the core (``processing_seconds``), inside the batch handler including Kafka sends
   (``batch_seconds``), and the rest (Faust/aiokafka fetching, dispatch, commits, timers).
   The worker's trigger counts are shown beside an in-order reference computed by the core over
   the same events. More silences than the reference means customers were timed out while their
   next events were still queued (the backlog is consumed unevenly across topics).
3. **Bare consumer.** A plain ``AIOKafkaConsumer`` (fresh group, earliest) on the same topics and
   records that only runs ``decode_event``; same throughput definition (first batch to last).
   The ratio worker/bare says how much of the ceiling set by Python + aiokafka + pydantic the
   worker reaches.
4. **Event-to-trigger latency.** A fresh worker on fresh topics. Bursts for 200 new customers spread
   over 10 s of real time; each burst is 6 errors 0.1 s apart with ``occurred_at`` = wall time at
   production (bursts never straddle a 60 s bucket boundary, so the 5th error fires). Latency =
   wall time the consumer of ``engagement.triggers`` received the trigger - wall time the
   triggering error (matched by the trigger's ``fired_at``) was handed to the producer. Includes
   the worker's batching window (``batch_within_seconds`` = 50 ms) and both Kafka hops.
5. **State size.** ``len(state.to_bytes())`` over every customer of the core run, and the worker's
   ``forethought_state_bytes`` gauge (mean over a sample of at most 200 table values).

Numbers depend on the machine; the broker runs on the same machine and competes for the CPU.
This is a benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import contextlib
import json
import math
import os
import platform
import pstats
import random
import re
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import TypeAdapter
from rich.console import Console
from rich.table import Table

from forethought.contracts.decode import Rejection, decode_event
from forethought.contracts.events import CLICKSTREAM_KINDS, InboundEvent
from forethought.core.config import EngineConfig
from forethought.core.engine import process
from forethought.core.state import CustomerState
from forethought.ops.kafka_local import DEFAULT_VERSION, LocalBroker
from forethought.ops.metrics import Metrics
from forethought.ops.process import free_port, running_worker
from forethought.ops.topics import create_topics, load_catalogue
from forethought.stream.processor import BatchProcessor, RawRecord
from forethought.stream.worker import partition_of

# The integration tests' engine settings (tests/integration/worker_kit.py), copied, not imported.
ENGINE_ENV = {
    "FORETHOUGHT_ENGINE__BUCKET_SECONDS": "60",
    "FORETHOUGHT_ENGINE__VISIT_GAP_SECONDS": "0",
    "FORETHOUGHT_ENGINE__PRIOR_GAP_SECONDS": "1",
    "FORETHOUGHT_ENGINE__PRIOR_LOG_SD": "0.3",
    "FORETHOUGHT_ENGINE__SILENCE_MIN_SECONDS": "20",
    "FORETHOUGHT_ENGINE__BURST_MIN_ERRORS": "5",
    "FORETHOUGHT_ENGINE__ALLOWED_LATENESS_SECONDS": "600",
    "FORETHOUGHT_SWEEP_INTERVAL_SECONDS": "0.5",
    "FORETHOUGHT_COMMIT_INTERVAL_SECONDS": "0.5",
}  # --set FORETHOUGHT_X=VALUE adds to or overrides these
EVENT_SPAN_SECONDS = 300.0  # event times of the pre-built events: the last 5 minutes (< allowed lateness)
REPEATS = 3
BATCH = 500  # Settings.batch_size default (FORETHOUGHT_BATCH_SIZE via --set changes it)
E2E_TIMEOUT = 300.0
BURSTS, BURST_SPREAD, BURST_ERRORS, BURST_STEP = 200, 10.0, 6, 0.1
TOPIC_OF = {**{k: "events.clickstream" for k in CLICKSTREAM_KINDS}, "error": "events.errors", "usage": "events.usage"}
console = Console(highlight=False, width=None if sys.stdout.isatty() else 132)


# ---------------------------------------------------------------------------------------------
# events


@dataclass(frozen=True, slots=True)
class Workload:
    """The pre-built events: (catalogue topic, key, raw JSON) and the decoded pydantic objects."""

    records: list[tuple[str, bytes, bytes]]
    events: list[InboundEvent]
    customers: int


def engine_config() -> EngineConfig:
    """The EngineConfig the worker builds from ``ENGINE_ENV`` (validated the same way)."""
    prefix = "FORETHOUGHT_ENGINE__"
    raw = {k.removeprefix(prefix).lower(): v for k, v in ENGINE_ENV.items() if k.startswith(prefix)}
    return TypeAdapter(EngineConfig).validate_python(raw)


def _kind(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.05:
        return "error"
    if roll < 0.25:
        return "usage"
    return rng.choices(["page_view", "click", "feature_used", "session_start", "session_end"],
                       weights=[45, 35, 12, 4, 4])[0]


def _fields(kind: str, rng: random.Random) -> dict[str, Any]:
    if kind == "page_view":
        return {"page": rng.choice(["/home", "/reports", "/billing", "/settings", "/docs/api"]),
                "properties": {"referrer": "internal", "device": rng.choice(["web", "ios", "android"])}}
    if kind == "click":
        return {"target": rng.choice(["export-btn", "nav-reports", "save", "share"])}
    if kind == "feature_used":
        return {"feature": rng.choice(["export", "reports", "alerts", "sso"]), "properties": {"plan": "pro"}}
    if kind == "error":
        return {"code": rng.choice(["E400", "E404", "E500", "E503"]),
                "severity": rng.choice(["warning", "error", "critical"]), "message": "request failed"}
    if kind == "usage":
        return {"metric": rng.choice(["api_calls", "seats", "storage_gb"]),
                "quantity": round(rng.uniform(0, 50), 2), "unit": "count"}
    return {}


def build_workload(n: int, customers: int, end: float, seed: int = 7) -> Workload:
    """``n`` valid events with strictly increasing event times in ``(end - span, end]``."""
    rng = random.Random(seed)
    weights = [1 / math.sqrt(rank + 1) for rank in range(customers)]
    who = rng.choices(range(customers), weights=weights, k=n)
    records: list[tuple[str, bytes, bytes]] = []
    events: list[InboundEvent] = []
    for i, c in enumerate(who):
        customer, kind = f"cust-{c:05d}", _kind(rng)
        at = end - EVENT_SPAN_SECONDS * (n - i) / n
        body = {"event_id": f"{customer}-{i}", "customer_id": customer, "type": kind,
                "occurred_at": datetime.fromtimestamp(at, tz=timezone.utc).isoformat(),
                "account_id": f"acct-{c // 10:04d}", "session_id": f"s-{c}-{i // 500}", **_fields(kind, rng)}
        raw = orjson.dumps(body)
        event = decode_event(raw)
        if isinstance(event, Rejection):
            raise AssertionError(f"benchmark built an invalid event: {event}")
        records.append((TOPIC_OF[kind], customer.encode(), raw))
        events.append(event)
    return Workload(records, events, len(set(who)))


# ---------------------------------------------------------------------------------------------
# 1. core


def _median_time(run: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def core_process(events: list[InboundEvent], config: EngineConfig) -> dict[str, CustomerState]:
    states: dict[str, CustomerState] = {}
    for event in events:
        key = event.customer_id
        states[key] = process(states.get(key), event, config).state  # type: ignore[assignment]
    return states


def reference_triggers(events: list[InboundEvent], config: EngineConfig) -> dict[str, int]:
    """Triggers when every event is seen in event-time order (``process`` fires a silence that
    came due before the customer's next event), plus silences due by the last event time."""
    states: dict[str, CustomerState] = {}
    fired: dict[str, int] = {}
    for event in events:
        step = process(states.get(event.customer_id), event, config)
        states[event.customer_id] = step.state  # type: ignore[assignment]
        for trigger in step.triggers:
            fired[trigger.playbook] = fired.get(trigger.playbook, 0) + 1
    end = events[-1].epoch if events else 0.0
    due = sum(1 for s in states.values() if s.deadline is not None and s.deadline <= end)
    fired["silence_dropoff"] = fired.get("silence_dropoff", 0) + due
    return fired


def core_decode(raws: list[tuple[bytes, frozenset[str]]]) -> int:
    return sum(not isinstance(decode_event(raw, kinds), Rejection) for raw, kinds in raws)


def core_decode_process(raws: list[tuple[bytes, frozenset[str]]], config: EngineConfig) -> dict[str, CustomerState]:
    states: dict[str, CustomerState] = {}
    for raw, kinds in raws:
        event = decode_event(raw, kinds)
        assert not isinstance(event, Rejection)
        key = event.customer_id
        states[key] = process(states.get(key), event, config).state  # type: ignore[assignment]
    return states


def core_batch_processor(records: list[RawRecord], kinds: dict[str, frozenset[str]], config: EngineConfig,
                         wall: float, partitions: int) -> int:
    table: dict[bytes, bytes] = {}
    processor = BatchProcessor(config, table, kinds, Metrics(), partition_for=lambda key: partition_of(key, partitions))
    size = int(ENGINE_ENV.get("FORETHOUGHT_BATCH_SIZE", BATCH))
    for start in range(0, len(records), size):
        outbox = processor.handle(records[start:start + size], wall)
        processor.commit(outbox)
    return len(table)


def bench_core(work: Workload, config: EngineConfig, profile: bool) -> dict[str, Any]:
    n = len(work.events)
    catalogue = load_catalogue()
    kinds = {t.name: frozenset(t.kinds) for t in catalogue.topics}
    raws = [(raw, kinds[topic]) for topic, _, raw in work.records]
    parts = catalogue.partitions
    records = [RawRecord(topic, partition_of(key, parts), i, key, raw, None)
               for i, (topic, key, raw) in enumerate(work.records)]
    wall = time.time() + 1
    t_process, states = _median_time(lambda: core_process(work.events, config))
    t_decode, _ = _median_time(lambda: core_decode(raws))
    t_both, _ = _median_time(lambda: core_decode_process(raws, config))
    t_batch, _ = _median_time(lambda: core_batch_processor(records, kinds, config, wall, parts))
    sizes = sorted(len(s.to_bytes()) for s in states.values())
    if profile:
        _profile(lambda: core_batch_processor(records, kinds, config, wall, parts))
    return {
        "process_eps": n / t_process, "process_us": t_process / n * 1e6,
        "decode_eps": n / t_decode, "decode_us": t_decode / n * 1e6,
        "decode_process_eps": n / t_both, "decode_process_us": t_both / n * 1e6,
        "batch_processor_eps": n / t_batch, "batch_processor_us": t_batch / n * 1e6,
        "reference_triggers": reference_triggers(work.events, config),
        "state_bytes": {"customers": len(sizes), "mean": statistics.fmean(sizes), "p50": percentile(sizes, 50),
                        "p99": percentile(sizes, 99), "max": sizes[-1]},
    }


def _profile(run: Callable[[], Any]) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(run)
    console.rule("cProfile: BatchProcessor.handle + commit over the workload (top 25 by own time)")
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(25)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# ---------------------------------------------------------------------------------------------
# Kafka helpers


@dataclass
class Deployment:
    """One isolated worker deployment: topic prefix, app id, web port, work dir."""

    bootstrap: str
    prefix: str
    workdir: Path
    web_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def app_id(self) -> str:
        return f"bench-{self.prefix.strip('.')}"

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def env(self) -> dict[str, str]:
        return {**ENGINE_ENV, "FORETHOUGHT_KAFKA_BOOTSTRAP": self.bootstrap, "FORETHOUGHT_TOPIC_PREFIX": self.prefix,
                "FORETHOUGHT_APP_ID": self.app_id, "FORETHOUGHT_WEB_PORT": str(self.web_port),
                "FORETHOUGHT_DATA_DIR": str(self.workdir / "data"), "FORETHOUGHT_LOG_LEVEL": "WARNING"}

    @contextlib.contextmanager
    def worker(self) -> Iterator[tuple[Any, float]]:
        """A ready worker; yields (process, seconds it took to become ready)."""
        started = time.monotonic()
        with running_worker(self.env(), self.workdir / "worker.log", self.url) as proc:
            yield proc, time.monotonic() - started


async def new_deployment(bootstrap: str, root: Path) -> Deployment:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    await create_topics(bootstrap, load_catalogue(), prefix)
    workdir = root / prefix.strip(".")
    workdir.mkdir(parents=True)
    return Deployment(bootstrap, prefix, workdir, free_port())


async def delete_topics(bootstrap: str, prefixes: list[str]) -> None:
    """Best effort: remove what this run created on an external broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if any(t.startswith(p) for p in prefixes)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def scrape(url: str) -> dict[str, float]:
    """``/metrics`` as sample name → value summed over labels, plus ``name|labels`` → value."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)$", line)
        if match:
            name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
            samples[name] = samples.get(name, 0.0) + value
            if labels:
                samples[f"{name}|{labels}"] = value
    return samples


def labelled(samples: dict[str, float], name: str, label: str) -> dict[str, float]:
    """``{label value: sample value}`` of metric ``name`` (summed over its other labels)."""
    out: dict[str, float] = {}
    for key, value in samples.items():
        if key.startswith(f"{name}|") and (found := re.search(rf'{label}="([^"]*)"', key)):
            out[found.group(1)] = out.get(found.group(1), 0.0) + value
    return out


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid`` (Linux /proc), None when unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# 2. worker end to end


async def produce_all(dep: Deployment, records: list[tuple[str, bytes, bytes]]) -> float:
    """Produce every record; returns records/s of the producer."""
    producer = AIOKafkaProducer(bootstrap_servers=dep.bootstrap, acks="all", linger_ms=20,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        started, pending = time.perf_counter(), []
        for topic, key, value in records:
            pending.append(await producer.send(dep.topic(topic), value=value, key=key))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


def bench_worker(dep: Deployment, expected: int, customers: int, broker_pid: int | None) -> dict[str, Any]:
    with dep.worker() as (proc, ready_after):
        first: tuple[float, float] | None = None
        last: tuple[float, float] = (time.perf_counter(), 0.0)
        cpu0 = bcpu0 = None
        deadline = time.monotonic() + E2E_TIMEOUT
        base = scrape(dep.url)
        while time.monotonic() < deadline:
            count = scrape(dep.url).get("forethought_events_in_total", 0.0)
            now = time.perf_counter()
            if count > 0 and first is None:
                first, cpu0, bcpu0 = (now, count), cpu_seconds(proc.pid), cpu_seconds(broker_pid)
            last = (now, count)
            if count >= expected:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with code {proc.returncode}; log: {dep.workdir / 'worker.log'}")
            time.sleep(0.1)
        cpu1, bcpu1 = cpu_seconds(proc.pid), cpu_seconds(broker_pid)
        end = scrape(dep.url)
        gauges = _wait_for_gauges(dep, customers)
    return _worker_result(first, last, expected, ready_after, base, end, gauges,
                          (cpu0, cpu1), (bcpu0, bcpu1))


def _wait_for_gauges(dep: Deployment, customers: int, timeout: float = 5.0) -> dict[str, float]:
    """The sweep timer refreshes gauges every 0.5 s; wait until it has seen every customer."""
    deadline = time.monotonic() + timeout
    metrics = scrape(dep.url)
    while time.monotonic() < deadline and metrics.get("forethought_customers", 0) < customers:
        time.sleep(0.2)
        metrics = scrape(dep.url)
    return metrics


def _worker_result(first: tuple[float, float] | None, last: tuple[float, float], expected: int, ready_after: float,
                   base: dict[str, float], end: dict[str, float], gauges: dict[str, float],
                   cpu: tuple[float | None, float | None], broker_cpu: tuple[float | None, float | None]) -> dict[str, Any]:
    result: dict[str, Any] = {"ready_after_s": ready_after, "expected": expected, "counted": last[1],
                              "complete": last[1] >= expected, "eps": None}
    if first is not None and last[0] > first[0]:
        elapsed = last[0] - first[0]
        result.update(eps=(last[1] - first[1]) / elapsed, elapsed_s=elapsed)
        if cpu[0] is not None and cpu[1] is not None:
            result["worker_cpu_share"] = (cpu[1] - cpu[0]) / elapsed
        if broker_cpu[0] is not None and broker_cpu[1] is not None:
            result["broker_cpu_share"] = (broker_cpu[1] - broker_cpu[0]) / elapsed
    batches = end.get("forethought_batch_seconds_count", 0.0)
    events = end.get("forethought_processing_seconds_count", 0.0)
    result.update(
        batches=batches, mean_batch_events=events / batches if batches else None,
        mean_batch_ms=1e3 * end.get("forethought_batch_seconds_sum", 0.0) / batches if batches else None,
        core_seconds=end.get("forethought_processing_seconds_sum", 0.0),
        batch_seconds=end.get("forethought_batch_seconds_sum", 0.0),
        triggers=end.get("forethought_triggers_total", 0.0) - base.get("forethought_triggers_total", 0.0),
        triggers_by_playbook=labelled(end, "forethought_triggers_total", "playbook"),
        late=end.get("forethought_late_events_total", 0.0),
        duplicates=end.get("forethought_duplicate_events_total", 0.0),
        rekeyed=end.get("forethought_rekeyed_events_total", 0.0),
        invalid=end.get("forethought_invalid_events_total", 0.0),
        state_bytes_gauge=gauges.get("forethought_state_bytes"),
        customers_gauge=gauges.get("forethought_customers"),
    )
    return result


# ---------------------------------------------------------------------------------------------
# 3. bare consumer


async def bench_bare(dep: Deployment, expected: int, timeout: float = 120.0) -> dict[str, Any]:
    kinds = {dep.topic(t.name): frozenset(t.kinds) for t in load_catalogue().topics}
    inputs = [dep.topic(t) for t in ("events.clickstream", "events.errors", "events.usage")]
    consumer = AIOKafkaConsumer(*inputs, bootstrap_servers=dep.bootstrap, group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        count, valid, first = 0, 0, None
        last = time.perf_counter()
        deadline = time.monotonic() + timeout
        while count < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                allowed = kinds[tp.topic]
                for record in records:
                    valid += not isinstance(decode_event(record.value, allowed), Rejection)
                count += len(records)
            if batches:
                last = time.perf_counter()
                if first is None:
                    first = (last, count)
    finally:
        await consumer.stop()
    eps = (count - first[1]) / (last - first[0]) if first and last > first[0] else None
    return {"eps": eps, "counted": count, "valid": valid, "complete": count >= expected}


# ---------------------------------------------------------------------------------------------
# 4. event-to-trigger latency


def burst_schedule(base: float, bucket_seconds: int) -> list[tuple[float, str, int]]:
    """(wall time, customer, n) for every error; no burst straddles a bucket boundary."""
    schedule = []
    for i in range(BURSTS):
        start = base + i * BURST_SPREAD / BURSTS
        end = start + (BURST_ERRORS - 1) * BURST_STEP + 0.05  # margin for a late send
        if math.floor(start / bucket_seconds) != math.floor(end / bucket_seconds):
            start = math.ceil(start / bucket_seconds) * bucket_seconds + 0.01
        customer = f"lat-{uuid.uuid4().hex[:6]}-{i:03d}"
        schedule += [(start + j * BURST_STEP, customer, j) for j in range(BURST_ERRORS)]
    return sorted(schedule)


async def _produce_bursts(dep: Deployment, schedule: list[tuple[float, str, int]],
                          produced: dict[str, dict[float, float]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=dep.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        pending = []
        for at, customer, n in schedule:
            await asyncio.sleep(max(0.0, at - time.time()))
            now = time.time()
            body = {"event_id": f"{customer}-e{n}", "customer_id": customer, "type": "error", "code": "E503",
                    "severity": "critical", "occurred_at": datetime.fromtimestamp(now, tz=timezone.utc).isoformat()}
            pending.append(await producer.send(dep.topic("events.errors"), orjson.dumps(body), key=customer.encode()))
            produced.setdefault(customer, {})[datetime.fromisoformat(body["occurred_at"]).timestamp()] = now
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _consume_triggers(consumer: AIOKafkaConsumer, produced: dict[str, dict[float, float]],
                            customers: set[str], stop: asyncio.Event, latencies: dict[str, float]) -> None:
    while len(latencies) < len(customers) and not stop.is_set():
        batches = await consumer.getmany(timeout_ms=100)
        received = time.time()
        for records in batches.values():
            for record in records:
                body = orjson.loads(record.value)
                customer = body["customer_id"]
                if customer not in customers or body["playbook"] != "error_burst" or customer in latencies:
                    continue
                fired_at = datetime.fromisoformat(body["fired_at"]).timestamp()
                errors = produced.get(customer, {})
                nearest = min(errors, key=lambda t: abs(t - fired_at), default=None)
                if nearest is not None and abs(nearest - fired_at) < 1e-3:
                    latencies[customer] = received - errors[nearest]


async def bench_latency(dep: Deployment, bucket_seconds: int) -> dict[str, Any]:
    await _warm_up(dep)
    consumer = AIOKafkaConsumer(dep.topic("engagement.triggers"), bootstrap_servers=dep.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=500)  # assignment and first fetch done before timing starts
        schedule = burst_schedule(time.time() + 0.5, bucket_seconds)
        customers = {c for _, c, _ in schedule}
        produced: dict[str, dict[float, float]] = {}
        latencies: dict[str, float] = {}
        stop = asyncio.Event()
        reader = asyncio.create_task(_consume_triggers(consumer, produced, customers, stop, latencies))
        try:
            await _produce_bursts(dep, schedule, produced)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), timeout=20)
        finally:
            stop.set()
            await reader
    finally:
        await consumer.stop()
    values = sorted(latencies.values())
    metrics = scrape(dep.url)
    own = metrics.get("forethought_event_to_trigger_seconds_sum", 0.0)
    own_n = metrics.get("forethought_event_to_trigger_seconds_count", 0.0)
    return {"bursts": len(customers), "fired": len(values), "p50_ms": 1e3 * percentile(values, 50),
            "p99_ms": 1e3 * percentile(values, 99), "max_ms": 1e3 * values[-1] if values else None,
            "mean_ms": 1e3 * statistics.fmean(values) if values else None,
            "worker_mean_ms": 1e3 * own / own_n if own_n else None}


async def _warm_up(dep: Deployment, timeout: float = 60.0) -> None:
    """One event through the fresh worker, so the latency run starts on a consuming worker."""
    producer = AIOKafkaProducer(bootstrap_servers=dep.bootstrap, acks="all")
    await producer.start()
    try:
        body = {"event_id": "warm-0", "customer_id": "warm-up", "type": "page_view",
                "occurred_at": datetime.now(timezone.utc).isoformat()}
        await producer.send_and_wait(dep.topic("events.clickstream"), orjson.dumps(body), key=b"warm-up")
    finally:
        await producer.stop()
    deadline = time.monotonic() + timeout
    while scrape(dep.url).get("forethought_events_in_total", 0.0) < 1:
        if time.monotonic() > deadline:
            raise TimeoutError("the latency worker never consumed the warm-up event")
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# report


def context(kafka: str) -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    versions = {name: _version(name) for name in ("faust-streaming", "aiokafka", "pydantic", "river", "orjson")}
    return {"command": shlex.join(sys.orig_argv), "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": model, "python": platform.python_version(), "platform": platform.platform(),
            "kafka": kafka, "versions": versions, "loadavg_1m": os.getloadavg()[0], "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _n(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def render(results: dict[str, Any]) -> Table:
    ctx, core, e2e, bare, lat = (results.get(k, {}) for k in ("context", "core", "worker", "bare", "latency"))
    table = Table(title="Forethought benchmark", show_lines=False)
    for column, justify in (("section", "left"), ("measure", "left"), ("value", "right"), ("notes", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    add = table.add_row
    add("machine", "CPUs (usable)", f"{ctx.get('cpus')} ({ctx.get('cpus_usable')})", ctx.get("cpu_model", ""))
    add("", "load average (1 min)", f"{ctx.get('loadavg_1m', 0):.2f} → {results.get('loadavg_end', 0):.2f}",
        "at start → at end; other processes on the machine compete with every figure below")
    add("", "python / kafka", f"{ctx.get('python')} / {ctx.get('kafka')}", " ".join(f"{k} {v}" for k, v in ctx.get("versions", {}).items()))
    if results.get("overrides"):
        add("", "--set", "", " ".join(results["overrides"]))
    add("", "workload", f"{results.get('events', 0):,} ev", f"{results.get('customers', 0):,} customers requested,"
        f" {results.get('customers_seen', 0):,} seen; median of {REPEATS}")
    table.add_section()
    if core:
        add("1 core (1 CPU)", "process() on decoded events", _n(core["process_eps"], 0, " ev/s"), f"{core['process_us']:.1f} µs/event")
        add("", "decode_event() on raw JSON", _n(core["decode_eps"], 0, " ev/s"), f"{core['decode_us']:.1f} µs/event")
        add("", "decode_event() + process()", _n(core["decode_process_eps"], 0, " ev/s"), f"{core['decode_process_us']:.1f} µs/event")
        add("", "BatchProcessor handle+commit", _n(core["batch_processor_eps"], 0, " ev/s"),
            f"{core['batch_processor_us']:.1f} µs/event; + state JSON per batch, metrics, batches of "
            f"{ENGINE_ENV.get('FORETHOUGHT_BATCH_SIZE', BATCH)}")
        table.add_section()
    if e2e:
        status = "complete" if e2e["complete"] else f"PARTIAL: {e2e['counted']:,.0f}/{e2e['expected']:,} in {E2E_TIMEOUT:g}s"
        add("2 worker e2e", "events/s through the broker", _n(e2e.get("eps"), 0, " ev/s"),
            f"{status}; measured over {_n(e2e.get('elapsed_s'), 1, ' s')}; ready after {e2e['ready_after_s']:.1f} s")
        add("", "worker / broker CPU", f"{_n(_pct(e2e.get('worker_cpu_share')), 0, '%')} / {_n(_pct(e2e.get('broker_cpu_share')), 0, '%')}",
            "CPU seconds per wall second while draining (100% = one core)")
        add("", "time in core / in batch handler", f"{_pct_of(e2e['core_seconds'], e2e)} / {_pct_of(e2e['batch_seconds'], e2e)}",
            f"of wall time; {e2e['batches']:,.0f} batches, mean {_n(e2e.get('mean_batch_events'), 0)} events, "
            f"{_n(e2e.get('mean_batch_ms'), 1, ' ms')}")
        add("", "late / dup / invalid / rekeyed",
            f"{e2e['late']:,.0f} / {e2e['duplicates']:,.0f} / {e2e['invalid']:,.0f} / {e2e['rekeyed']:,.0f}", "")
        ref = core.get("reference_triggers", {})
        for playbook in sorted(set(ref) | set(e2e["triggers_by_playbook"])):
            got, want = e2e["triggers_by_playbook"].get(playbook, 0), ref.get(playbook, 0)
            flag = " ← more than in order: inputs consumed out of event-time order" if got > 1.1 * want + 5 else ""
            add("", f"triggers: {playbook}", f"{got:,.0f}", f"in-order reference (core): {want:,}{flag}")
        table.add_section()
    if bare:
        add("3 bare consumer", "aiokafka + decode_event only", _n(bare.get("eps"), 0, " ev/s"),
            f"{'complete' if bare['complete'] else 'PARTIAL'}: {bare['counted']:,} records, {bare['valid']:,} valid")
        if e2e.get("eps") and bare.get("eps"):
            add("", "ratio worker / bare", f"{e2e['eps'] / bare['eps']:.2f}", "")
        table.add_section()
    if lat:
        add("4 latency", "error → trigger p50 / p99", f"{_n(lat['p50_ms'], 1)} / {_n(lat['p99_ms'], 1)} ms",
            f"max {_n(lat['max_ms'], 1)} ms, mean {_n(lat['mean_ms'], 1)} ms")
        add("", "bursts fired", f"{lat['fired']} / {lat['bursts']}",
            f"worker's own event_to_trigger mean {_n(lat.get('worker_mean_ms'), 1)} ms (Kafka timestamp → sent)")
        table.add_section()
    if core:
        sb = core["state_bytes"]
        add("5 state bytes", "to_bytes() per customer", f"mean {sb['mean']:,.0f}",
            f"p50 {sb['p50']:,} · p99 {sb['p99']:,} · max {sb['max']:,} over {sb['customers']:,} customers")
    if e2e:
        add("" if core else "5 state bytes", "worker forethought_state_bytes", _n(e2e.get("state_bytes_gauge"), 0),
            f"gauge: mean of ≤200 table values; forethought_customers = {_n(e2e.get('customers_gauge'), 0)}")
    return table


def _pct(share: float | None) -> float | None:
    return None if share is None else 100 * share


def _pct_of(seconds: float, e2e: dict[str, Any]) -> str:
    elapsed = e2e.get("elapsed_s")
    return f"{100 * seconds / elapsed:.0f}%" if elapsed else "-"


# ---------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events per run (default 100000)")
    parser.add_argument("--customers", type=int, default=2000, help="distinct customers (default 2000)")
    parser.add_argument("--bootstrap", default=os.environ.get("FORETHOUGHT_KAFKA_BOOTSTRAP"),
                        help="Kafka bootstrap; default $FORETHOUGHT_KAFKA_BOOTSTRAP, else a LocalBroker is started")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the in-process worker path")
    parser.add_argument("--set", action="append", default=[], metavar="FORETHOUGHT_X=VALUE",
                        help="override a worker setting (also the core's EngineConfig), repeatable")
    parser.add_argument("--skip-kafka", action="store_true", help="only the in-process parts (1 and 5)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.customers < 1:
        parser.error("--events and --customers must be >= 1")
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("FORETHOUGHT_"):
            parser.error(f"--set expects FORETHOUGHT_NAME=VALUE, got {item!r}")
        ENGINE_ENV[key] = value
    return args


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    config = engine_config()
    results: dict[str, Any] = {"events": args.events, "customers": args.customers, "overrides": args.set,
                               "context": context("-")}
    console.print(f"building {args.events:,} events for {args.customers:,} customers …")
    work = build_workload(args.events, args.customers, end=time.time())
    results["customers_seen"] = work.customers
    console.print("1/5 core: process, decode, decode+process, BatchProcessor (3 repetitions each) …")
    results["core"] = bench_core(work, config, args.profile)
    if args.skip_kafka:
        return results
    broker, bootstrap, prefixes = None, args.bootstrap, []
    try:
        if bootstrap is None:
            console.print(f"starting a local Kafka {DEFAULT_VERSION} broker …")
            broker = LocalBroker()
            bootstrap = broker.start()
        results["context"]["kafka"] = f"{DEFAULT_VERSION} (LocalBroker)" if broker else f"external {bootstrap}"
        _kafka_parts(results, work, config, bootstrap, broker, root, prefixes)
    finally:
        if broker is not None:
            broker.stop()
        elif bootstrap and prefixes:
            with contextlib.suppress(Exception):
                asyncio.run(delete_topics(bootstrap, prefixes))
    return results


def _kafka_parts(results: dict[str, Any], work: Workload, config: EngineConfig,
                 bootstrap: str, broker: LocalBroker | None, root: Path, prefixes: list[str]) -> None:
    dep = asyncio.run(new_deployment(bootstrap, root))
    prefixes += [dep.prefix, dep.app_id]
    console.print(f"2/5 producing {len(work.records):,} events to {dep.prefix}* …")
    results["produce_eps"] = asyncio.run(produce_all(dep, work.records))
    console.print("2/5 worker draining the backlog …")
    results["worker"] = bench_worker(dep, len(work.records), work.customers, broker.pid if broker else None)
    console.print("3/5 bare aiokafka consumer + decode_event …")
    results["bare"] = asyncio.run(bench_bare(dep, len(work.records)))
    lat_dep = asyncio.run(new_deployment(bootstrap, root))
    prefixes += [lat_dep.prefix, lat_dep.app_id]
    console.print(f"4/5 latency: {BURSTS} error bursts over {BURST_SPREAD:g} s on a fresh worker …")
    with lat_dep.worker():
        results["latency"] = asyncio.run(bench_latency(lat_dep, config.bucket_seconds))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    root = Path(tempfile.mkdtemp(prefix="forethought-bench-"))
    ok = False
    try:
        started = time.monotonic()
        results = run(args, root)
        results["total_seconds"] = time.monotonic() - started
        results["loadavg_end"] = os.getloadavg()[0]
        ok = True
    finally:
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            console.print(f"[red]benchmark failed[/]; worker logs kept in {root}")
    ctx = results["context"]
    console.print(f"\ncommand: {ctx['command']}")
    console.print(f"platform: {ctx['platform']}; started {ctx['started_at']}; took {results['total_seconds']:.0f} s")
    console.print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        console.print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
