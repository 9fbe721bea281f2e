"""Command line of ``bench.py``: options, the order of the parts, cleanup, and the final report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from forethought.core.config import EngineConfig
from forethought.ops.logs import configure_logging
from forethought.devkafka import DEFAULT_VERSION, LocalBroker

from .common import BURST_SPREAD, BURSTS, ENGINE_ENV, console, engine_config
from .core import bench_core
from .kafka import bench_bare, bench_worker, delete_topics, new_deployment, produce_all
from .latency import bench_latency
from .report import context, render
from .workload import Workload, build_workload


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    """The options; every ``--set`` is applied to ``ENGINE_ENV`` here."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    """Every part in order; a broker started here is stopped, topics on an external one deleted."""
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
    """Parts 2-4; ``prefixes`` collects what was created, for cleanup."""
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


def main(argv: list[str] | None, description: str) -> int:
    """Parse, run in a temporary work dir (kept on failure), print and optionally save the results."""
    args = parse_args(argv, description)
    configure_logging("WARNING", "console")  # the in-process worker path logs decisions; keep the table readable
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
    _print_results(results, args.json)
    return 0


def _print_results(results: dict[str, Any], json_path: Path | None) -> None:
    ctx = results["context"]
    console.print(f"\ncommand: {ctx['command']}")
    console.print(f"platform: {ctx['platform']}; started {ctx['started_at']}; took {results['total_seconds']:.0f} s")
    console.print(render(results))
    if json_path:
        json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        console.print(f"results written to {json_path}")
