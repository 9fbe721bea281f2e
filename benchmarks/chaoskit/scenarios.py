"""The chaos scenarios and their two sizes: :data:`FULL` (``make chaos``) and :data:`SHORT` (the
integration test). Each scenario gets its own topics and consumer group on the one broker, runs the
whole workload through real workers while its faults are injected at seeded random points, lets the
group catch up, stops the workers and compares what they published with the undisturbed run.

The workload is cut into one leg more than there are faults; fault ``i`` strikes at a random point of
leg ``i``, and the producer may then go on to the end of leg ``i + 1`` while the workers recover, so
every fault hits a stream in motion.

>>> legs(1000, 3)
[0, 250, 500, 750, 1000]
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.errors import KafkaError

from forethought.contracts.records import Trigger
from forethought.ops.process import wait_ready
from forethought.ops.topics import BEHAVIOUR_INPUTS, create_topics, load_catalogue

from .cluster import Cluster
from .compare import Tally, compare_states, compare_triggers
from .expected import Expected, worker_settings
from .faults import FaultResult, Faults, Timing
from .traffic import Producer, lag, lag_by_partition, read_all
from .workload import Workload

# The worker's settings for every scenario: due times checked twice a second; the event clock follows
# the events only (it never runs on with the wall clock while a worker is stopped or starved, which would
# make the output depend on timing); a lagging input is always waited for, so the order is the replay's.
WORKER_ENV = {"FORETHOUGHT_SWEEP_INTERVAL_SECONDS": "0.5", "FORETHOUGHT_COMMIT_INTERVAL_SECONDS": "0.5",
              "FORETHOUGHT_IDLE_GRACE_SECONDS": "100000000", "FORETHOUGHT_MAX_TASK_IDLE_SECONDS": "60"}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A name and the faults it injects, in order."""

    name: str
    faults: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Profile:
    """A size of the chaos run: population, pace, timings and scenarios."""

    customers: int
    days: float
    rate: float
    timing: Timing
    scenarios: tuple[Scenario, ...]
    settle_timeout: float = 600.0


FULL = Profile(160, 40, 250, Timing(broker_down=20, stopped=30), (
    Scenario("sigkill", ("kill",) * 10), Scenario("broker-restart", ("broker",)),
    Scenario("sigstop", ("stop",)), Scenario("join-leave", ("join", "leave"))))
SHORT = Profile(40, 10, 100, Timing(broker_down=5, stopped=5), (
    Scenario("sigkill", ("kill",) * 2), Scenario("broker-restart", ("broker",)),
    Scenario("sigstop", ("stop",)), Scenario("join-leave", ("join", "leave"))))


@dataclass
class ScenarioResult:
    """What one scenario measured."""

    name: str
    faults: list[FaultResult] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    seconds: float = 0.0
    settled: bool = True
    behind: dict[str, int] = field(default_factory=dict)  # when not settled: uncommitted records per partition
    worker_starts: int = 0


def legs(total: int, faults: int) -> list[int]:
    """Boundaries of ``faults + 1`` equal legs of ``total`` records."""
    return [round(total * i / (faults + 1)) for i in range(faults + 2)]


async def settle(cluster: Cluster, group: str, topics: list[str], partitions: int,
                 timeout: float) -> dict[str, int]:
    """Wait until the group has committed every input record (its states and triggers are then on the
    broker); workers that exit on their own are started again meanwhile. Returns what is still
    uncommitted per partition at the deadline (empty: settled)."""
    deadline, behind = time.monotonic() + timeout, {"?": -1}
    while time.monotonic() < deadline:
        cluster.supervise()
        with contextlib.suppress(KafkaError):
            behind = await lag_by_partition(cluster.bootstrap, group, topics, partitions)
            if not behind:
                return behind
        await asyncio.sleep(1.0)
    return behind


async def run_scenario(cluster: Cluster, scenario: Scenario, workload: Workload, expected: Expected,
                       profile: Profile, seed: int) -> ScenarioResult:
    """Run ``scenario``; its workers are stopped when it ends, whatever happens."""
    result, began = ScenarioResult(scenario.name), time.monotonic()
    prefix = f"chaos-{scenario.name}-{seed}-{int(time.time())}."
    catalogue = load_catalogue()
    await create_topics(cluster.bootstrap, catalogue, prefix)
    first = cluster.add_worker(prefix, dict(WORKER_ENV))
    producer = Producer(cluster.bootstrap, prefix, workload.records, profile.rate)
    try:
        first.start()
        assert first.proc is not None
        await asyncio.to_thread(wait_ready, first.deployment.url, first.proc, profile.timing.recovery_timeout,
                                first.log)
        bounds, rng = legs(len(workload.records), len(scenario.faults)), random.Random(f"{seed}-{scenario.name}")
        producer.limit = bounds[1]
        await producer.start()
        inputs = [prefix + t for t in BEHAVIOUR_INPUTS]

        async def caught_up() -> bool:
            try:
                return await lag(cluster.bootstrap, first.deployment.app_id, inputs, workload.partitions) == 0
            except KafkaError:  # the broker not (yet) answering: not caught up
                return False

        faults = Faults(cluster, first, producer, profile.timing, caught_up)
        for i, kind in enumerate(scenario.faults):
            await producer.reached(bounds[i] + int(rng.uniform(0.1, 0.9) * (bounds[i + 1] - bounds[i])))
            producer.limit = bounds[i + 2]
            result.faults.append(await faults.inject(kind))
        await producer.reached(len(workload.records))
        result.behind = await settle(cluster, first.deployment.app_id, inputs, workload.partitions,
                                     profile.settle_timeout)
        result.settled = not result.behind
        result.worker_starts = sum(w.starts for w in cluster.workers)
    finally:
        await producer.close()
        await asyncio.to_thread(cluster.stop_workers)  # SIGTERM: the last flush and commit
    triggers = await read_all(cluster.bootstrap, prefix + "engagement.triggers", workload.partitions)
    compare_triggers(expected, (Trigger.model_validate_json(r.value) for r in triggers), result.tally)
    changelog = await read_all(cluster.bootstrap, f"{first.deployment.app_id}-customer_state-changelog",
                               workload.partitions)
    config = worker_settings(WORKER_ENV).engine
    compare_states(expected, {r.key: r.value for r in changelog}, config, result.tally)
    result.seconds = time.monotonic() - began
    return result


async def run_profile(profile: Profile, workdir: Path, seed: int, workload: Workload, expected: Expected,
                      only: tuple[str, ...] = (), on_result: Callable[[ScenarioResult], object] | None = None,
                      cluster: Cluster | None = None) -> list[ScenarioResult]:
    """Every scenario of ``profile`` (or those named in ``only``) on one local broker started here (in
    ``workdir``, or ``cluster``'s); every process is stopped at the end, whatever happens."""
    cluster = cluster or Cluster(workdir)
    results: list[ScenarioResult] = []
    try:
        await asyncio.to_thread(cluster.start_broker)
        for scenario in profile.scenarios:
            if not only or scenario.name in only:
                results.append(await run_scenario(cluster, scenario, workload, expected, profile, seed))
                if on_result is not None:
                    on_result(results[-1])
    finally:
        await asyncio.to_thread(cluster.close)
    return results
