"""Part 1 (and 5): in-process timings of the core, decoding and the batch processor, on one core."""

from __future__ import annotations

import cProfile
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forethought.contracts.decode import Rejection, decode_event
from forethought.contracts.events import InboundEvent
from forethought.core.config import EngineConfig
from forethought.core.engine import process
from forethought.core.models import PartitionModels, behaviour_trees
from forethought.core.runtime import PartitionRuntime
from forethought.core.state import CustomerState
from forethought.ops.metrics import Metrics
from forethought.ops.playbooks import load_rules
from forethought.ops.settings import Settings
from forethought.ops.topics import load_catalogue
from forethought.stream.processor import BatchProcessor, RawRecord
from forethought.stream.worker import partition_of

from .common import BATCH, ENGINE_ENV, REPEATS, console, percentile
from .workload import Workload

# The playbooks the worker runs (FORETHOUGHT_PLAYBOOKS_FILE, e.g. via --set), so core and worker compare alike.
RULES = load_rules(Path(ENGINE_ENV.get("FORETHOUGHT_PLAYBOOKS_FILE", str(Settings().playbooks_file))))

Raws = list[tuple[bytes, frozenset[str]]]


def _median_time(run: Callable[[], Any]) -> tuple[float, Any]:
    """Median wall time of ``REPEATS`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def core_process(events: list[InboundEvent], config: EngineConfig) -> dict[str, CustomerState]:
    """``process()`` over decoded events, from empty state."""
    states: dict[str, CustomerState] = {}
    for event in events:
        key = event.customer_id
        states[key] = process(states.get(key), event, config, RULES).state  # type: ignore[assignment]
    return states


def core_process_models(events: list[InboundEvent], config: EngineConfig, partitions: int) -> dict[str, CustomerState]:
    """``process()`` with each customer's partition's models (behaviour trees, learned drop-off), as the worker."""
    states: dict[str, CustomerState] = {}
    models = {p: PartitionModels(p, config.model_min_labels, config) for p in range(partitions)}
    partition: dict[str, int] = {}  # murmur2 once per customer (as replay does), not per event: not the core's cost
    for event in events:
        key = event.customer_id
        p = partition.get(key)
        if p is None:
            p = partition[key] = partition_of(key.encode(), partitions)
        held = models[p]
        states[key] = process(states.get(key), event, config, RULES, models=held).state  # type: ignore[assignment]
    return states


def trees_observe_us(config: EngineConfig, n: int = 20_000) -> float:
    """µs per ``observe`` of a *warm* partition's behaviour trees (the bench's events span minutes, too
    short for the trees to warm: their windows are days), on feature vectors like ordinary minutes."""
    trees, rng = behaviour_trees(config), random.Random(1)
    vectors = [{name: rng.random() * 0.4 for name in trees.features} for _ in range(n)]
    window = config.anomaly_window_seconds
    for i, x in enumerate(vectors):  # two windows: a reference with scores
        trees.observe(x, i * 2 * window / n)
    started = time.perf_counter()
    for i, x in enumerate(vectors):
        trees.observe(x, 2 * window + config.allowed_lateness_seconds + i * window / (2 * n))
    return (time.perf_counter() - started) / n * 1e6


def core_runtime(events: list[InboundEvent], config: EngineConfig, partitions: int) -> dict[int, PartitionRuntime]:
    """The one driver in process: a :class:`PartitionRuntime` per partition (models, deadlines,
    due ticks, the dirty-state hand-off once per ``BATCH`` events as the worker's commit)."""
    runtimes = {p: PartitionRuntime(p, config, RULES, PartitionModels(p, config.model_min_labels, config))
                for p in range(partitions)}
    partition: dict[str, int] = {}  # murmur2 once per customer, as in core_process_models (and replay)
    for i, event in enumerate(events):
        key = event.customer_id
        p = partition.get(key)
        if p is None:
            p = partition[key] = partition_of(key.encode(), partitions)
        runtimes[p].feed(event)
        if i % BATCH == 0:
            for runtime in runtimes.values():
                runtime.take_dirty()
    return runtimes


def reference_triggers(events: list[InboundEvent], config: EngineConfig) -> dict[str, int]:
    """Triggers when every event is seen in event-time order (the runtime, as replay drives it),
    plus silences due by the last event time (what the worker's timer fires by then)."""
    runtime = PartitionRuntime(0, config, RULES)
    fired: dict[str, int] = {}
    emitted = [e for event in sorted(events, key=lambda e: e.epoch) for e in runtime.feed(event)]
    emitted += runtime.advance(max(e.epoch for e in events)) if events else []
    for emission in emitted:
        for trigger in emission.step.triggers if emission.step is not None else ():
            fired[trigger.playbook] = fired.get(trigger.playbook, 0) + 1
    return fired


def core_decode(raws: Raws) -> int:
    """``decode_event`` alone; returns the number of valid events."""
    return sum(not isinstance(decode_event(raw, kinds), Rejection) for raw, kinds in raws)


def core_decode_process(raws: Raws, config: EngineConfig) -> dict[str, CustomerState]:
    """``decode_event`` then ``process()``, from empty state."""
    states: dict[str, CustomerState] = {}
    for raw, kinds in raws:
        event = decode_event(raw, kinds)
        assert not isinstance(event, Rejection)
        key = event.customer_id
        states[key] = process(states.get(key), event, config, RULES).state  # type: ignore[assignment]
    return states


def core_batch_processor(records: list[RawRecord], kinds: dict[str, frozenset[str]], config: EngineConfig,
                         wall: float, partitions: int) -> int:
    """The worker's in-process path (``handle`` + ``commit`` per batch, a dict as the table)."""
    table: dict[bytes, bytes] = {}
    processor = BatchProcessor(config, table, kinds, Metrics(), partition_for=lambda key: partition_of(key, partitions),
                               rules=RULES)
    size = int(ENGINE_ENV.get("FORETHOUGHT_BATCH_SIZE", BATCH))
    for start in range(0, len(records), size):
        outbox = processor.handle(records[start:start + size], wall)
        processor.commit(outbox)
    return len(table)


def bench_core(work: Workload, config: EngineConfig, profile: bool) -> dict[str, Any]:
    """Parts 1 and 5: events/s and µs/event of each in-process path, and state sizes."""
    n = len(work.events)
    catalogue = load_catalogue()
    kinds = {t.name: frozenset(t.kinds) for t in catalogue.topics}
    raws = [(raw, kinds[topic]) for topic, _, raw in work.records]
    parts = catalogue.partitions
    records = [RawRecord(topic, partition_of(key, parts), i, key, raw, None)
               for i, (topic, key, raw) in enumerate(work.records)]
    wall = time.time() + 1
    t_process, states = _median_time(lambda: core_process(work.events, config))
    t_models, _ = _median_time(lambda: core_process_models(work.events, config, parts))
    t_runtime, _ = _median_time(lambda: core_runtime(work.events, config, parts))
    t_decode, _ = _median_time(lambda: core_decode(raws))
    t_both, _ = _median_time(lambda: core_decode_process(raws, config))
    t_batch, _ = _median_time(lambda: core_batch_processor(records, kinds, config, wall, parts))
    sizes = sorted(len(s.to_bytes()) for s in states.values())
    if profile:
        _profile(lambda: core_batch_processor(records, kinds, config, wall, parts))
    return {
        "process_eps": n / t_process, "process_us": t_process / n * 1e6,
        "process_models_eps": n / t_models, "process_models_us": t_models / n * 1e6,
        "runtime_eps": n / t_runtime, "runtime_us": t_runtime / n * 1e6,
        "trees_observe_us": trees_observe_us(config),
        "decode_eps": n / t_decode, "decode_us": t_decode / n * 1e6,
        "decode_process_eps": n / t_both, "decode_process_us": t_both / n * 1e6,
        "batch_processor_eps": n / t_batch, "batch_processor_us": t_batch / n * 1e6,
        "reference_triggers": reference_triggers(work.events, config),
        "state_bytes": {"customers": len(sizes), "mean": statistics.fmean(sizes), "p50": percentile(sizes, 50),
                        "p99": percentile(sizes, 99), "max": sizes[-1]},
    }


def _profile(run: Callable[[], Any]) -> None:
    """Print the top 25 functions of ``run`` by own time."""
    profiler = cProfile.Profile()
    profiler.runcall(run)
    console.rule("cProfile: BatchProcessor.handle + commit over the workload (top 25 by own time)")
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(25)
