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

from .changelog import changelog_state_bytes
from .common import BURST_SPREAD, BURSTS, ENGINE_ENV, console, engine_config
from .core import bench_core
from .kafka import bench_bare, bench_worker, by_topic, delete_topics, new_deployment, produce_all
from .latency import bench_latency
from .load import LOAD_FRACTION, load_rate
from .noop import bench_noop, noop_app_id
from .replaylines import bench_long, long_enabled
from .report import context, render, render_targets
from .runtime import bench_runtime
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
    parser.add_argument("--skip-kafka", action="store_true", help="only the in-process parts (1 and 5; 6 with --long)")
    parser.add_argument("--backlog", choices=("by-topic", "interleaved"), default="by-topic",
                        help="produce the worker's backlog topic by topic (default: all clickstream, then all usage,"
                             " then all errors) or interleaved in event-time order")
    parser.add_argument("--latency-load", type=float, default=LOAD_FRACTION, metavar="FRACTION",
                        help=f"background load during the latency part, as a fraction of the worker's measured"
                             f" events/s (default {LOAD_FRACTION:g}; 0: no load)")
    parser.add_argument("--latency-rate", type=float, metavar="EVENTS_PER_S",
                        help="background load during the latency part in events/s (bursts included), instead of"
                             " --latency-load's fraction of the measured rate: the same load on every run")
    parser.add_argument("--long", action="store_true",
                        help="also the long lines (or FORETHOUGHT_BENCH_LONG=1): replay of CDNOW and of a slice of"
                             " the make eval file, each timed as a whole process")
    parser.add_argument("--eval-every", type=int, default=10, metavar="N",
                        help="the long replay line of the make eval file takes one customer in N (default 10)")
    args = parser.parse_args(argv)
    if args.latency_rate is not None and args.latency_rate <= 0:
        parser.error("--latency-rate must be > 0 events/s")
    if args.events < 1 or args.customers < 1 or args.eval_every < 1:
        parser.error("--events, --customers and --eval-every must be >= 1")
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
    console.print("1/6 core: process, decode, decode+process, BatchProcessor (3 repetitions each) …")
    results["core"] = bench_core(work, config, args.profile)
    results["runtime"] = bench_runtime(results["core"])
    if long_enabled(args.long):
        results["long"] = bench_long(root, args.eval_every)
    if args.skip_kafka:
        return results
    broker, bootstrap, prefixes = None, args.bootstrap, []
    try:
        if bootstrap is None:
            console.print(f"starting a local Kafka {DEFAULT_VERSION} broker …")
            broker = LocalBroker()
            bootstrap = broker.start()
        results["context"]["kafka"] = f"{DEFAULT_VERSION} (LocalBroker)" if broker else f"external {bootstrap}"
        _kafka_parts(args, results, work, config, (bootstrap, broker), root, prefixes)
    finally:
        if broker is not None:
            broker.stop()
        elif bootstrap and prefixes:
            with contextlib.suppress(Exception):
                asyncio.run(delete_topics(bootstrap, prefixes))
    return results


def _kafka_parts(args: argparse.Namespace, results: dict[str, Any], work: Workload, config: EngineConfig,
                 kafka: tuple[str, LocalBroker | None], root: Path, prefixes: list[str]) -> None:
    """Parts 2-4; ``prefixes`` collects what was created, for cleanup."""
    bootstrap, broker = kafka
    dep = asyncio.run(new_deployment(bootstrap, root))
    prefixes += [dep.prefix, dep.app_id]
    prefixes.append(noop_app_id(dep))
    records = by_topic(work.records) if args.backlog == "by-topic" else work.records
    results["backlog"] = args.backlog
    console.print(f"2/6 producing {len(records):,} events to {dep.prefix}* ({args.backlog}) …")
    results["produce_eps"] = asyncio.run(produce_all(dep, records))
    console.print("2/6 worker draining the backlog …")
    results["worker"] = bench_worker(dep, len(records), work.customers, broker.pid if broker else None)
    results["changelog"] = asyncio.run(changelog_state_bytes(dep))
    console.print("3/6 no-op Faust agent (take_events, counts only) over the same backlog …")
    results["noop"] = bench_noop(dep, len(records))
    console.print("3/6 bare aiokafka consumer + decode_event …")
    results["bare"] = asyncio.run(bench_bare(dep, len(records)))
    lat_dep = asyncio.run(new_deployment(bootstrap, root))
    prefixes += [lat_dep.prefix, lat_dep.app_id]
    measured = {"eps": args.latency_rate} if args.latency_rate else results["worker"]
    rate = load_rate(measured, 1.0 if args.latency_rate else args.latency_load)
    results["latency_rate"] = args.latency_rate  # set: a fixed load, not a fraction of the measured rate
    console.print(f"4/6 latency: {BURSTS} error bursts over {BURST_SPREAD:g} s on a fresh worker,"
                  f" under {rate:,.0f} ev/s of load …")
    with lat_dep.worker():
        results["latency"] = asyncio.run(bench_latency(lat_dep, config.bucket_seconds, rate))


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
    console.print(render_targets(results))
    if json_path:
        json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        console.print(f"results written to {json_path}")
