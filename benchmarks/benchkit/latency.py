"""Part 4: event-to-trigger latency of error bursts on a fresh worker.

Beside the percentiles, ``by_start`` gives the latency by when each burst began (2 s bins): flat,
the worker kept up; rising through the window, it was falling behind its input (an overload: the
percentiles then depend on how long the bursts last, not on the pipeline); a step up, something
stalled it once and it had too little headroom to catch up.

>>> bins = latency_timeline([(0.1, 0.08), (0.9, 0.12), (2.5, 1.5)])  # (s after the first burst, latency s)
>>> [(b["from_s"], b["bursts"], b["p50_ms"], b["max_ms"]) for b in bins]
[(0, 2, 80.0, 120.0), (2, 1, 1500.0, 1500.0)]
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from .common import BURST_ERRORS, BURST_SPREAD, BURST_STEP, BURSTS, percentile
from .kafka import Deployment, scrape
from .load import LOAD_LEAD, produce_load


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
    """Send each error at its scheduled wall time; record (event time → wall time sent) per customer."""
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
    """Match each customer's first ``error_burst`` trigger to its error; store the latency."""
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


async def bench_latency(dep: Deployment, bucket_seconds: int, rate: float = 0.0) -> dict[str, Any]:
    """Produce the bursts over a background load of ``rate`` events/s (``load.produce_load``), read
    ``engagement.triggers``; latency percentiles in ms."""
    await _warm_up(dep)
    load_stop = asyncio.Event()
    load = asyncio.create_task(produce_load(dep, rate, load_stop)) if rate > 0 else None
    try:
        if load is not None:
            await asyncio.sleep(LOAD_LEAD)  # the worker is under load before the first burst
        result = await _bursts(dep, bucket_seconds)
    finally:
        load_stop.set()
        sent = await load if load is not None else None
    return result | {"load": sent}


async def _bursts(dep: Deployment, bucket_seconds: int) -> dict[str, Any]:
    """The bursts and their triggers (the part of ``bench_latency`` that is timed)."""
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
    first = min(at for at, _, _ in schedule)
    began = [(min(produced[c].values()) - first, latency) for c, latency in latencies.items()]
    return _latency_result(sorted(latencies.values()), len(customers), scrape(dep.url)) | {
        "by_start": latency_timeline(began)}


def latency_timeline(pairs: list[tuple[float, float]], width: float = 2.0) -> list[dict[str, Any]]:
    """(seconds from the first burst to a burst's first error, latency s) → per ``width``-second bin:
    the bursts that began in it, their median and largest latency in ms."""
    bins: dict[int, list[float]] = {}
    for began, latency in pairs:
        bins.setdefault(int(began // width), []).append(latency)
    return [{"from_s": int(k * width), "bursts": len(v), "p50_ms": 1e3 * percentile(sorted(v), 50),
             "max_ms": 1e3 * max(v)} for k, v in sorted(bins.items())]


def _latency_result(values: list[float], bursts: int, metrics: dict[str, float]) -> dict[str, Any]:
    """Percentiles of the sorted latencies (s) in ms, beside the worker's own event-to-trigger mean."""
    own = metrics.get("forethought_event_to_trigger_seconds_sum", 0.0)
    own_n = metrics.get("forethought_event_to_trigger_seconds_count", 0.0)
    return {"bursts": bursts, "fired": len(values), "p50_ms": 1e3 * percentile(values, 50),
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
