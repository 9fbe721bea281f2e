"""Background load for the latency part: realistic events at a fixed rate, event time = wall time.

The latency target of issue #11 is set "at half the worker's maximum rate": the benchmark derives
the rate from the worker's measured events/s in the same run (``LOAD_FRACTION``), less the rate of
the error bursts themselves, and keeps this load running while the bursts are produced.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime, timezone
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from .common import BURST_ERRORS, BURST_SPREAD, BURSTS, TOPIC_OF
from .kafka import Deployment
from .workload import _fields, _kind

LOAD_FRACTION = 0.5  # of the worker's measured maximum events/s
LOAD_CUSTOMERS = 2000
LOAD_LEAD = 2.0  # seconds of load before the first burst
TICK = 0.01


BURST_RATE = BURSTS * BURST_ERRORS / BURST_SPREAD  # the error bursts' own events/s, part of the total


def load_rate(worker: dict[str, Any], fraction: float = LOAD_FRACTION) -> float:
    """The background rate: ``fraction`` of the worker's measured events/s, less the bursts' own rate
    (so that bursts + load together come to ``fraction``); 0 when unmeasured.

    >>> load_rate({"eps": 3000.0}), load_rate({}), load_rate({"eps": None}), load_rate({"eps": 100.0})
    (1380.0, 0.0, 0.0, 0.0)
    """
    return max(0.0, fraction * (worker.get("eps") or 0.0) - BURST_RATE)


def load_event(i: int, rng: random.Random, now: float) -> tuple[str, bytes, bytes]:
    """(catalogue topic, key, JSON) of the ``i``-th load event, occurring at ``now``.

    >>> topic, key, raw = load_event(3, random.Random(1), 1_750_000_000.0)
    >>> key.startswith(b"load-"), topic in {"events.clickstream", "events.usage", "events.errors"}
    (True, True)
    """
    customer, kind = f"load-{rng.randrange(LOAD_CUSTOMERS):05d}", _kind(rng)
    body = {"event_id": f"{customer}-l{i}", "customer_id": customer, "type": kind,
            "occurred_at": datetime.fromtimestamp(now, tz=timezone.utc).isoformat(), **_fields(kind, rng)}
    return TOPIC_OF[kind], customer.encode(), orjson.dumps(body)


async def produce_load(dep: Deployment, rate: float, stop: asyncio.Event, seed: int = 11) -> dict[str, float]:
    """Send load events at ``rate``/s until ``stop`` is set; returns what was sent and at what rate."""
    producer = AIOKafkaProducer(bootstrap_servers=dep.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    rng, sent, pending = random.Random(seed), 0, []
    started = time.perf_counter()
    try:
        while not stop.is_set():
            due = int(rate * (time.perf_counter() - started)) - sent
            for _ in range(max(0, due)):
                topic, key, value = load_event(sent, rng, time.time())
                pending.append(await producer.send(dep.topic(topic), value=value, key=key))
                sent += 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
            await asyncio.sleep(TICK)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    elapsed = time.perf_counter() - started
    return {"target_eps": rate, "sent": sent, "sent_eps": sent / elapsed if elapsed > 0 else 0.0}
