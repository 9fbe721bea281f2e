"""The processes a chaos scenario runs: one local broker (restartable on its port, keeping its data)
and worker processes of one consumer group, each in its own process group so a fault or the clean-up
reaches every process it started and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from forethought.devkafka import LocalBroker
from forethought.ops.process import free_port, spawn_worker, stop_process
from forethought.testing import WorkerDeployment


def get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """GET ``url``: (status, body); (0, "") when nothing answers (a stopped or dead worker)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, ValueError):
        return 0, ""


def events_in(exposition: str) -> float:
    """Records the worker has taken in (inputs and control records), from its /metrics text.

    >>> events_in('forethought_events_in_total{topic="a",type="click"} 3.0\\nother 9\\n')
    3.0
    """
    return sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
               if line.startswith(("forethought_events_in_total{", "forethought_control_records_in_total{")))


@dataclass
class WorkerProcess:
    """One ``forethought worker`` of the group, with its own web port, data dir and log."""

    name: str
    deployment: WorkerDeployment
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    wanted: bool = True  # a supervisor (the harness) starts it again when it exits on its own
    pids: list[int] = field(default_factory=list)  # of every process started, for the clean-up check

    @property
    def log(self) -> Path:
        """The worker's log (JSON lines; every start of this worker appends to it)."""
        return self.deployment.workdir / f"{self.name}.log"

    def start(self) -> None:
        """Spawn the worker (its log appends across restarts)."""
        self.proc, self.starts = spawn_worker(self.deployment.env(self.env), self.log), self.starts + 1
        self.pids.append(self.proc.pid)

    def alive(self) -> bool:
        """Whether its current process is running (a stopped one counts as running)."""
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the worker's whole process group."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last flush, no last commit."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self) -> None:
        """Stop for good (SIGCONT first, in case it was stopped; then SIGTERM, SIGKILL after 30 s)."""
        self.wanted = False
        if self.proc is not None:
            self.signal(signal.SIGCONT)
            stop_process(self.proc)

    async def status(self) -> tuple[bool, float]:
        """(ready, records taken in so far) as its web views say; (False, 0) when it does not answer."""
        code, body = await asyncio.to_thread(get, f"{self.deployment.url}/ready")
        ready = code == 200 and json.loads(body).get("ready") is True
        code, text = await asyncio.to_thread(get, f"{self.deployment.url}/metrics")
        return ready, events_in(text) if code == 200 else 0.0


@dataclass
class Cluster:
    """A broker on a fixed port (so a restart keeps its address) and the workers of one deployment."""

    workdir: Path
    broker: LocalBroker = field(init=False)
    workers: list[WorkerProcess] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)  # every broker and worker process started

    def __post_init__(self) -> None:
        self.broker = LocalBroker(data_dir=self.workdir / "broker", port=free_port(), keep_data=True)

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>``: the same across broker restarts."""
        return self.broker.bootstrap

    def start_broker(self) -> str:
        """Start the broker (again: same port, same data) and wait until it serves."""
        bootstrap = self.broker.start()
        assert self.broker.pid is not None
        self.pids.append(self.broker.pid)
        return bootstrap

    def stop_broker(self) -> None:
        """Stop the broker (SIGTERM, SIGKILL after 20 s), keeping its data."""
        self.broker.stop()

    def add_worker(self, prefix: str, env: dict[str, str]) -> WorkerProcess:
        """A worker (not started) of the deployment under ``prefix``: same group, its own port and dir."""
        name = f"worker-{len(self.workers) + 1}"
        deployment = WorkerDeployment(self.bootstrap, prefix, self.workdir / prefix.strip(".") / name, free_port())
        worker = WorkerProcess(name, deployment, env)
        self.workers.append(worker)
        return worker

    def live(self) -> list[WorkerProcess]:
        """The workers whose process is running."""
        return [w for w in self.workers if w.alive()]

    def supervise(self) -> int:
        """Start again every wanted worker that exited on its own; how many were."""
        dead = [w for w in self.workers if w.wanted and w.proc is not None and not w.alive()]
        for worker in dead:
            worker.start()
        return len(dead)

    def stop_workers(self) -> None:
        """Stop every worker this cluster started (process groups; SIGKILL after a timeout)."""
        for worker in self.workers:
            worker.stop()
            self.pids += worker.pids
        self.workers.clear()

    def close(self) -> None:
        """Stop the workers, then the broker."""
        try:
            self.stop_workers()
        finally:
            self.broker.stop()
