"""The core's ``process()`` lines of ``make bench`` alone, in CPU seconds, for before/after pairs.

Same events as the bench (``benchkit.workload``: 2,000 Zipf-ish customers, 75 % clickstream, 20 %
usage, 5 % errors) but with a fixed end time, so two checkouts see the same events, and the
process's CPU time (``time.process_time``), so a loaded machine's waits do not count::

    .venv/bin/python benchmarks/core_speed.py                          # this checkout
    PYTHONPATH=/path/to/old/src .venv/bin/python benchmarks/core_speed.py   # another one's core
    .venv/bin/python benchmarks/core_speed.py --profile models         # cProfile, top 30 by own time

Run the two checkouts in turn a few times and quote the ratios pair by pair (docs/runtime/core-speed.md).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from benchkit.common import engine_config  # noqa: E402
from benchkit.core import core_runtime  # noqa: E402
from benchkit.workload import build_workload  # noqa: E402

from forethought.contracts.events import InboundEvent  # noqa: E402
from forethought.contracts.partitioning import partition_of  # noqa: E402
from forethought.core.config import EngineConfig  # noqa: E402
from forethought.core.engine import process  # noqa: E402
from forethought.core.models import PartitionModels  # noqa: E402
from forethought.ops.playbooks import load_rules  # noqa: E402
from forethought.ops.settings import Settings  # noqa: E402
from forethought.ops.topics import load_catalogue  # noqa: E402

END = 1_780_000_000.0  # the events' last time: fixed, so every checkout replays the same events
RULES = load_rules(Settings().playbooks_file)
LINES = ("plain", "models", "runtime")  # runtime: the bench's PartitionRuntime line (its ratio to "models")


def plain(events: list[InboundEvent], config: EngineConfig) -> None:
    """``process()`` over decoded events from empty state (the bench's ``core_process``)."""
    states: dict[str, Any] = {}
    for event in events:
        key = event.customer_id
        states[key] = process(states.get(key), event, config, RULES).state


def with_models(events: list[InboundEvent], config: EngineConfig, partitions: int) -> None:
    """The same with each customer's partition's models (the bench's ``core_process_models``)."""
    states: dict[str, Any] = {}
    models = {p: PartitionModels(p, config.model_min_labels, config) for p in range(partitions)}
    partition: dict[str, int] = {}
    for event in events:
        key = event.customer_id
        if (p := partition.get(key)) is None:
            p = partition[key] = partition_of(key.encode(), partitions)
        states[key] = process(states.get(key), event, config, RULES, models=models[p]).state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs per line; the median is printed")
    parser.add_argument("--only", choices=LINES, help="one line only")
    parser.add_argument("--profile", choices=LINES, help="cProfile one run of a line instead")
    args = parser.parse_args()
    work = build_workload(args.events, 2000, end=END)
    config, partitions, n = engine_config(), load_catalogue().partitions, len(work.events)
    for event in work.events:
        _ = event.epoch  # decoded events carry their epoch (the bench's later repeats see it cached)
    lines: dict[str, Callable[[], Any]] = {"plain": lambda: plain(work.events, config),
                                           "models": lambda: with_models(work.events, config, partitions),
                                           "runtime": lambda: core_runtime(work.events, config, partitions)}
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(lines[args.profile])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return 0
    for name, run in lines.items():
        if args.only and name != args.only:
            continue
        times = []
        for _ in range(args.repeats):
            started = time.process_time()
            run()
            times.append(time.process_time() - started)
        cpu = statistics.median(times)
        print(f"{name}: {n / cpu:,.0f} events/s, {cpu / n * 1e6:.1f} µs/event (CPU, median of {args.repeats})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
