"""Whether the broker answers, and how long each loss of readiness lasted (docs/durability.md).

:class:`Recovery` follows the worker's readiness over time: when it was lost, why (``start``: the
process started; ``rebalance``: partitions moved and their state was restored; ``broker``: the
cluster stopped answering), and how long it took to come back, which it exports as
``forethought_recovery_seconds{cause}``. The worker's timers feed it: :func:`broker_answers` every
few seconds, the readiness (``stream.web.readiness``) every half second.

(tests/unit/test_recovery.py shows it at work.)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forethought.ops.logs import get_logger
from forethought.ops.metrics import Metrics

log = get_logger("worker")
MISSED_CHECKS = 2  # unanswered metadata requests in a row that make the broker unreachable


class Recovery:
    """Readiness over time, the broker's reachability, and the last recovery time per cause."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic, age: float | None = None) -> None:
        self.metrics, self.clock = metrics, clock
        self.since = clock() - (process_age() if age is None else age)  # not ready since the process started
        self.cause = "start"
        self.ready = False
        self.reachable = True
        self.missed = 0
        metrics.broker_reachable.set(1)

    def broker_answered(self, answered: bool) -> None:
        """One metadata request's outcome: unreachable after :data:`MISSED_CHECKS` misses in a row."""
        self.missed = 0 if answered else self.missed + 1
        reachable = self.missed < MISSED_CHECKS
        if reachable != self.reachable:
            (log.info if reachable else log.error)("broker_reachable" if reachable else "broker_unreachable")
        self.reachable = reachable
        self.metrics.broker_reachable.set(1 if reachable else 0)

    def observe(self, ready: bool) -> float | None:
        """The readiness now; returns how long the worker was not ready when it just became ready."""
        now = self.clock()
        took = None
        if ready and not self.ready:
            took = round(now - self.since, 3)
            self.metrics.recovery.labels(cause=self.cause).set(took)
            log.info("ready", cause=self.cause, seconds=took)
        elif not ready and self.ready:
            self.since, self.cause = now, "rebalance" if self.reachable else "broker"
        elif not ready and not self.reachable and self.cause == "rebalance":
            self.cause = "broker"  # the rebalance was the broker going away
        self.ready = ready
        return took


async def broker_answers(app: Any, topic: str, timeout: float) -> bool:
    """Whether the cluster answers a metadata request for ``topic`` within ``timeout`` seconds, asked
    over the worker's producer connections (True while there is no producer yet: nothing to judge)."""
    from aiokafka.cluster import ClusterMetadata
    from aiokafka.errors import KafkaError

    try:
        client = app.producer._ensure_producer().client  # faust-streaming 0.15's own accessor
    except Exception:  # noqa: BLE001 - not started yet (or the agent test context): no opinion
        return True
    try:  # aiokafka has no public "ping": a private metadata update into a throw-away ClusterMetadata
        return bool(await asyncio.wait_for(client._metadata_update(ClusterMetadata(), [topic]), timeout))
    except (TimeoutError, KafkaError, OSError):
        return False


def process_age() -> float:
    """Seconds since this process started (Linux ``/proc``; 0 where it cannot be read)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, float(Path("/proc/uptime").read_text().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return 0.0
