"""Forethought at scale (issue #12 point 6): one worker vs two, and one worker holding many customers.

Run from the repository root (``make bench-scale``)::

    .venv/bin/python benchmarks/scale.py                           # 60k events; 1M customers
    .venv/bin/python benchmarks/scale.py --customers 200000        # a smaller store
    .venv/bin/python benchmarks/scale.py --smoke                   # the smallest sizes (the test's)

Broker: ``--bootstrap`` (default ``$FORETHOUGHT_KAFKA_BOOTSTRAP``), else a
:class:`~forethought.devkafka.LocalBroker` started and stopped here.

1. **One worker vs two.** ``--events`` pre-built events (benchkit's workload: realistic kinds, Zipf-ish
   customers) are produced once; then one worker (its own consumer group) consumes them all, then two
   workers in another group (each its own data directory and port), in the same run. Throughput =
   events counted (``forethought_events_in_total``, summed over the group's workers) between the moment
   every worker of the group is ready and the last one, over that time. The ratio two/one is what
   counts: both runs share the machine's load (printed: the load average before and after).
2. **Many customers on RocksDB.** ``--customers`` states are written straight into a data
   directory's RocksDB databases, as the worker lays them out (a few thousand distinct states built
   by the core from real events, each copied under many customer ids: building 1M through Kafka would
   take longer than the measurement), with the production engine settings. A worker then starts on that
   directory against the real broker: the seconds (wall, and the worker's CPU seconds: the fair figure
   on a shared machine) to ``/ready``, which waits for its deadline index rebuilt (every state read
   once; the rebuild's own wall and CPU seconds come from its log line), and its RSS (``VmRSS``, and
   the peak ``VmHWM``); then ``--touch`` events for
   customers drawn at random (cold ones come back from disk) and its RSS again; then a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import rocksdict

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.common import console  # noqa: E402
from benchkit.kafka import Deployment, cpu_seconds, new_deployment, produce_all, scrape  # noqa: E402
from benchkit.workload import build_workload  # noqa: E402

from forethought.contracts.partitioning import partition_of  # noqa: E402
from forethought.core.config import EngineConfig  # noqa: E402
from forethought.core.runtime import PartitionRuntime  # noqa: E402
from forethought.core.state import CustomerState  # noqa: E402
from forethought.devkafka import LocalBroker  # noqa: E402
from forethought.ops.process import spawn_worker, stop_process, wait_ready  # noqa: E402
from forethought.ops.topics import load_catalogue  # noqa: E402
from forethought.testing import free_port  # noqa: E402

TEMPLATES = 2_000
PARTITIONS = load_catalogue().partitions


def load_average() -> str:
    """The 1-minute load average (other processes compete for the 2 cores)."""
    return f"{os.getloadavg()[0]:.2f}"


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of ``pid`` in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def group_env(dep: Deployment, group: str, port: int, data: Path, **extra: str) -> dict[str, str]:
    """One worker of consumer group ``group`` (its own port and data directory)."""
    return dep.env(**{"FORETHOUGHT_APP_ID": group, "FORETHOUGHT_WEB_PORT": str(port),
                      "FORETHOUGHT_DATA_DIR": str(data), **extra})


def counted(urls: list[str], before: float = 0.0) -> float:
    """Events counted by the workers behind ``urls`` (``before`` when one is too busy to answer in time)."""
    try:
        return sum(scrape(url).get("forethought_events_in_total", 0.0) for url in urls)
    except OSError:  # a timeout: a worker's event loop is inside a long batch on this loaded machine
        return before


def run_group(dep: Deployment, name: str, workers: int, expected: int, timeout: float) -> dict[str, Any]:
    """Start ``workers`` workers in one new group over the produced backlog; their throughput once all are ready."""
    group, ports = f"{dep.app_id}-{name}", [free_port() for _ in range(workers)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    with ExitStack() as stack:
        logs = [dep.workdir / f"{name}-{i}.log" for i in range(workers)]
        procs = [spawn_worker(group_env(dep, group, port, dep.workdir / f"{name}-{i}"), log)
                 for i, (port, log) in enumerate(zip(ports, logs, strict=True))]
        for proc in procs:
            stack.callback(stop_process, proc)
        for url, proc, log in zip(urls, procs, logs, strict=True):
            wait_ready(url, proc, timeout=120, log_path=log)
        start, first = time.perf_counter(), counted(urls)
        deadline, last = time.monotonic() + timeout, first
        while last < expected and time.monotonic() < deadline:
            time.sleep(0.2)
            last = counted(urls, last)
        elapsed = time.perf_counter() - start
    return {"workers": workers, "events": last - first, "seconds": elapsed,
            "eps": (last - first) / elapsed if elapsed > 0 else None, "complete": last >= expected,
            "counted_before_all_ready": first}


def templates(config: EngineConfig, count: int) -> list[CustomerState]:
    """``count`` distinct states built by the core from the benchmark workload's events."""
    workload = build_workload(count * 6, count, time.time() - 60)
    runtime = PartitionRuntime(0, config)
    for event in workload.events:
        runtime.feed(event)
    return runtime.customers()


def table_path(data_dir: Path, table: str, partition: int) -> Path:
    """Where Faust's RocksDB store keeps ``table``'s partition (``<datadir>/v1/tables/<table>-<p>.db``)."""
    return data_dir / "v1" / "tables" / f"{table}-{partition}.db"


def build_store(data_dir: Path, customers: int, config: EngineConfig) -> dict[str, Any]:
    """Write ``customers`` states into the customer-state table's databases; returns sizes."""
    started = time.perf_counter()
    shapes = templates(config, TEMPLATES)
    dbs = []
    for partition in range(PARTITIONS):
        path = table_path(data_dir, "customer_state", partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        dbs.append(rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True)))
    batches = [rocksdict.WriteBatch(raw_mode=True) for _ in dbs]
    written = 0
    for i in range(customers):
        customer = f"scale-{i:07d}"
        key = customer.encode()
        raw = dataclasses.replace(shapes[i % len(shapes)], customer_id=customer).to_bytes()
        partition = partition_of(key, PARTITIONS)
        batches[partition].put(key, raw)
        written += len(raw)
        if i % 50_000 == 49_999:
            for db, batch in zip(dbs, batches, strict=True):
                db.write(batch)
            batches = [rocksdict.WriteBatch(raw_mode=True) for _ in dbs]
    for db, batch in zip(dbs, batches, strict=True):
        db.write(batch)
        db.close()
    return {"customers": customers, "state_bytes_mean": written / max(customers, 1),
            "build_seconds": time.perf_counter() - started}


def wait_log(log: Path, text: str, proc: Any, timeout: float) -> float:
    """Seconds until ``text`` appears in ``log`` (fails when the worker exits or time runs out)."""
    started = time.monotonic()
    while text not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() - started > timeout:
            raise RuntimeError(f"no {text!r} in {log} (worker exit code {proc.poll()})")
        time.sleep(0.1)
    return time.monotonic() - started


def rebuild_cost(log: Path) -> dict[str, float]:
    """The last ``deadline_index_rebuilt`` line's own wall and CPU seconds, and how many states came
    from their hint or were decoded (JSON or console log)."""
    line = [text for text in log.read_text(errors="replace").splitlines() if "deadline_index_rebuilt" in text][-1]
    found = {name: float(value) for name, value
             in re.findall(r'"?(seconds|cpu_seconds|hinted|decoded)"?[=:] ?([0-9.]+)', line)}
    return {"rebuild_s": found.get("seconds", math.nan), "rebuild_cpu_s": found.get("cpu_seconds", math.nan),
            "hinted": found.get("hinted", math.nan), "decoded": found.get("decoded", math.nan)}


def start_on_store(env: dict[str, str], log: Path, url: str) -> tuple[Any, dict[str, Any]]:
    """Start a worker on the data directory: seconds (wall, and the worker's CPU) to ``/ready``,
    which waits for the deadline index; the rebuild's own wall and CPU seconds from its log line."""
    log.write_text("")
    started = time.monotonic()
    proc = spawn_worker(env, log)
    wait_ready(url, proc, timeout=1200, log_path=log)  # a first start without hints decodes every state
    ready, ready_cpu = time.monotonic() - started, cpu_seconds(proc.pid)
    wait_log(log, "deadline_index_rebuilt", proc, timeout=900)
    return proc, {"ready_s": ready, "ready_cpu_s": ready_cpu, "index_rebuilt_s": time.monotonic() - started,
                  "cpu_s": cpu_seconds(proc.pid), "load": load_average(), **rebuild_cost(log)}


async def many_customers(dep: Deployment, customers: int, touch: int) -> dict[str, Any]:
    """Part 2 (see the module docstring)."""
    config = EngineConfig()  # the production engine settings (deadlines hours away, not the tests' seconds)
    data = dep.workdir / "scale-store"
    result: dict[str, Any] = {"store": build_store(data, customers, config)}
    env = {**group_env(dep, f"{dep.app_id}-scale", dep.web_port, data), "FORETHOUGHT_LOG_LEVEL": "INFO"}
    env = {k: v for k, v in env.items() if not k.startswith("FORETHOUGHT_ENGINE__")}
    log = dep.workdir / "scale.log"
    proc, result["first_start"] = start_on_store(env, log, dep.url)
    try:
        result["after_rebuild_kib"] = memory_kib(proc.pid)
        rng = random.Random(11)
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30))
        records = [("events.clickstream", f"scale-{c:07d}".encode(),
                    json.dumps({"event_id": f"touch-{i}", "customer_id": f"scale-{c:07d}", "type": "page_view",
                                "occurred_at": at}).encode())
                   for i, c in enumerate(rng.sample(range(customers), min(touch, customers)))]
        await produce_all(dep, records)
        deadline = time.monotonic() + 600
        touched = 0.0
        while (touched := counted([dep.url], touched)) < len(records) and time.monotonic() < deadline:
            time.sleep(0.5)
        result["touched"] = touched
        time.sleep(3)  # a flush and a sweep
        result["after_touch_kib"] = memory_kib(proc.pid)
    finally:
        stop_process(proc)
    proc, result["restart"] = start_on_store(env, log, dep.url)
    try:
        result["restart_kib"] = memory_kib(proc.pid)
        result["restored_records"] = scrape(dep.url).get("forethought_state_restored_records_total", 0.0)
    finally:
        stop_process(proc)
    return result


def report(scale: dict[str, Any] | None, many: dict[str, Any] | None) -> None:
    """Print the figures."""
    if scale:
        one, two = scale["one"], scale["two"]
        console.print(f"load average: {scale['load_before']} before, {scale['load_after']} after (2 cores, shared)")
        for run in (one, two):
            console.print(f"{run['workers']} worker(s): {run['eps'] or 0:,.0f} events/s "
                          f"({run['events']:,.0f} events in {run['seconds']:.1f} s once all were ready; "
                          f"complete={run['complete']})")
        if one["eps"] and two["eps"]:
            console.print(f"two workers / one worker: {two['eps'] / one['eps']:.2f}x (target >= 1.5x)")
    if many:
        store, first, restart = many["store"], many["first_start"], many["restart"]
        console.print(f"{store['customers']:,} customers on RocksDB ({store['state_bytes_mean']:.0f} B/state, "
                      f"built in {store['build_seconds']:.0f} s)")
        for name, times, mem in (("start on the store", first, many["after_rebuild_kib"]),
                                 ("restart", restart, many["restart_kib"])):
            console.print(f"  {name}: ready (index rebuilt) {times['ready_s']:.1f} s wall, {times['ready_cpu_s']:.1f}"
                          f" CPU s of the worker; the rebuild itself {times['rebuild_s']:.1f} s wall,"
                          f" {times['rebuild_cpu_s']:.1f} CPU s ({times['hinted']:,.0f} from hints,"
                          f" {times['decoded']:,.0f} decoded; load {times['load']}); RSS"
                          f" {mem['VmRSS'] / 1024:.0f} MiB (peak {mem['VmHWM'] / 1024:.0f} MiB)")
        touched = many["after_touch_kib"]
        console.print(f"  after {many['touched']:,.0f} events for random customers: RSS {touched['VmRSS'] / 1024:.0f}"
                      f" MiB (peak {touched['VmHWM'] / 1024:.0f} MiB); the restart restored"
                      f" {many['restored_records']:,.0f} changelog records")


async def run(args: argparse.Namespace, bootstrap: str, root: Path) -> dict[str, Any]:
    """Both parts on one broker."""
    scale: dict[str, Any] | None = None
    if args.events:
        dep = await new_deployment(bootstrap, root)
        workload = build_workload(args.events, args.pool, time.time() - 120)
        await produce_all(dep, workload.records)
        scale = {"load_before": load_average()}
        scale["one"] = run_group(dep, "one", 1, len(workload.records), args.timeout)
        scale["two"] = run_group(dep, "two", 2, len(workload.records), args.timeout)
        scale["load_after"] = load_average()
    many = None
    if args.customers:  # its own topics: its worker must not read part 1's backlog
        many = await many_customers(await new_deployment(bootstrap, root), args.customers, args.touch)
    return {"scale": scale, "many": many}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=os.environ.get("FORETHOUGHT_KAFKA_BOOTSTRAP"))
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--pool", type=int, default=5_000, help="customers of the 1-vs-2 workload")
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers on RocksDB (0: skip part 2)")
    parser.add_argument("--touch", type=int, default=20_000, help="events for random customers after the start")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--smoke", action="store_true", help="the smallest sizes (tests/integration/test_bench_scale)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.smoke:
        args.events, args.pool, args.customers, args.touch = 600, 50, 3_000, 100
    with tempfile.TemporaryDirectory(prefix="forethought-scale-") as tmp, ExitStack() as stack:
        bootstrap = args.bootstrap
        if not bootstrap:
            broker = LocalBroker()
            stack.callback(broker.stop)
            bootstrap = broker.start()
        results = asyncio.run(run(args, bootstrap, Path(tmp)))
    report(results["scale"], results["many"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
