"""Kafka parts: isolated deployments, producing, worker end to end (2) and the bare consumer (3)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from forethought.contracts.decode import Rejection, decode_event
from forethought.ops.process import running_worker
from forethought.testing import WorkerDeployment
from forethought.ops.topics import load_catalogue

from .common import E2E_TIMEOUT, ENGINE_ENV


class Deployment(WorkerDeployment):
    """A benchmark deployment: the benchmark's engine settings, quiet logs."""

    app_prefix = "bench"

    def env(self, engine: Mapping[str, str] = ENGINE_ENV, **extra: str) -> dict[str, str]:
        """``ENGINE_ENV`` (after any ``--set``) instead of the test defaults, logs at WARNING."""
        return super().env(engine, **{"FORETHOUGHT_LOG_LEVEL": "WARNING", **extra})

    @contextlib.contextmanager
    def worker(self) -> Iterator[tuple[Any, float]]:
        """A ready worker; yields (process, seconds it took to become ready)."""
        started = time.monotonic()
        with running_worker(self.env(), self.workdir / "worker.log", self.url) as proc:
            yield proc, time.monotonic() - started


async def new_deployment(bootstrap: str, root: Path) -> Deployment:
    """Create the catalogue's topics under a fresh prefix and a work dir under ``root``."""
    prefix = f"b{uuid.uuid4().hex[:8]}."
    workdir = root / prefix.strip(".")
    workdir.mkdir(parents=True)
    return await Deployment.create(bootstrap, prefix, workdir)


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


BY_TOPIC = ("events.clickstream", "events.usage", "events.errors")


def by_topic(records: list[tuple[str, bytes, bytes]]) -> list[tuple[str, bytes, bytes]]:
    """The records topic by topic (all clickstream, then all usage, then all errors), each topic in
    its own order: the backlog that issue #11's ordered inputs must consume in event-time order.

    >>> [t for t, _, _ in by_topic([("events.errors", b"a", b"1"), ("events.clickstream", b"a", b"2"),
    ...                             ("events.usage", b"a", b"3"), ("events.clickstream", b"b", b"4")])]
    ['events.clickstream', 'events.clickstream', 'events.usage', 'events.errors']
    """
    rank = {topic: i for i, topic in enumerate(BY_TOPIC)}
    return sorted(records, key=lambda r: rank.get(r[0], len(rank)))


def bench_worker(dep: Deployment, expected: int, customers: int, broker_pid: int | None) -> dict[str, Any]:
    """Part 2: run the worker over the produced backlog, polling ``/metrics`` until all is counted."""
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
    """Throughput, CPU shares and the worker's own counters, as reported in the table."""
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
    """Part 3: a plain consumer that only runs ``decode_event`` over the same records."""
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
