"""The faults, and how long the workers take to recover from each.

Recovery is measured from the end of the fault's action (the SIGKILL, with the replacement worker
started at once as a supervisor would; the broker serving again; the SIGCONT; the second worker
spawned; the SIGTERM of the leaving one) until every running worker of the group answers ``/ready``
and has taken in a new record since they all became ready, or has none left to take ("ready and
consuming again"). A worker
that exits on its own meanwhile is started again and counted (``restarts``).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .cluster import Cluster, WorkerProcess
from .traffic import Producer

KINDS = ("kill", "broker", "stop", "join", "leave")


@dataclass(frozen=True, slots=True)
class Timing:
    """How long faults last and how long recovery may take."""

    broker_down: float = 20.0
    stopped: float = 30.0
    recovery_timeout: float = 240.0


@dataclass
class FaultResult:
    """One fault: its kind, the records produced when it began, its recovery (None: not within the
    timeout) and the workers that exited on their own during it."""

    kind: str
    at_record: int
    recovery: float | None
    restarts: int = 0


async def recovered(cluster: Cluster, since: float, timeout: float,
                    caught_up: Callable[[], Awaitable[bool]]) -> tuple[float | None, int]:
    """(seconds from ``since`` until the group is ready and consuming again, or None; restarts).

    Consuming again: a record taken in since every worker became ready, or nothing left to take
    (``caught_up``: the group has committed every record produced so far).
    """
    deadline, baseline, restarts = time.monotonic() + timeout, None, 0
    while time.monotonic() < deadline:
        restarts += cluster.supervise()
        workers = cluster.live()
        statuses = [await w.status() for w in workers]
        if workers and all(ready for ready, _ in statuses):
            total = sum(taken for _, taken in statuses)
            if baseline is None:
                baseline = total
            elif total > baseline or await caught_up():
                return time.monotonic() - since, restarts
        else:
            baseline = None
        await asyncio.sleep(0.2)
    return None, restarts


class Faults:
    """Injects faults into one deployment (``first`` is the worker faults aim at)."""

    def __init__(self, cluster: Cluster, first: WorkerProcess, producer: Producer, timing: Timing,
                 caught_up: Callable[[], Awaitable[bool]]) -> None:
        self.cluster, self.first, self.producer, self.timing = cluster, first, producer, timing
        self.caught_up = caught_up
        self.second: WorkerProcess | None = None

    async def inject(self, kind: str) -> FaultResult:
        """Inject one fault of ``kind`` (:data:`KINDS`) and measure the recovery."""
        actions: dict[str, Callable[[], Awaitable[float]]] = {
            "kill": self._kill, "broker": self._broker, "stop": self._stop, "join": self._join, "leave": self._leave}
        at = self.producer.sent
        since = await actions[kind]()
        recovery, restarts = await recovered(self.cluster, since, self.timing.recovery_timeout, self.caught_up)
        return FaultResult(kind, at, recovery, restarts)

    async def _kill(self) -> float:
        since = time.monotonic()
        self.first.kill()
        self.first.start()
        return since

    async def _broker(self) -> float:
        async with self.producer.paused():
            await asyncio.to_thread(self.cluster.stop_broker)
            await asyncio.sleep(self.timing.broker_down)
            await asyncio.to_thread(self.cluster.start_broker)
            return time.monotonic()

    async def _stop(self) -> float:
        self.first.signal(signal.SIGSTOP)
        await asyncio.sleep(self.timing.stopped)
        self.first.signal(signal.SIGCONT)
        return time.monotonic()

    async def _join(self) -> float:
        self.second = self.cluster.add_worker(self.first.deployment.prefix, self.first.env)
        self.second.start()
        return time.monotonic()

    async def _leave(self) -> float:
        assert self.second is not None, "a leave follows a join"
        since = time.monotonic()
        await asyncio.to_thread(self.second.stop)
        return since
