"""Time to ready after a SIGKILL: the worker killed and started again at once, before and after #12.

    .venv/bin/python benchmarks/recovery.py            # its own local broker (or FORETHOUGHT_KAFKA_BOOTSTRAP)

For each membership setting, in one run, on a fresh consumer group: start a worker, wait until
``/ready`` answers 200, SIGKILL it, start it again at once, and time from the kill to ``/ready``
200 again (the restarted worker also reports ``forethought_recovery_seconds{cause="start"}``: its
own start to ready). ``before`` is the session timeout and heartbeat Faust used by default until
#12 (60 s / 3 s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from forethought.devkafka import LocalBroker
from forethought.ops.process import spawn_worker, stop_process, wait_ready
from forethought.testing import FAST_ENGINE_ENV, WorkerDeployment

CASES = {
    "before: session 60 s, heartbeat 3 s": {"FORETHOUGHT_KAFKA_SESSION_TIMEOUT_SECONDS": "60",
                                            "FORETHOUGHT_KAFKA_HEARTBEAT_SECONDS": "3"},
    "after: session 10 s, heartbeat 2 s (default)": {},
    "after + static membership (group instance id)": {"FORETHOUGHT_KAFKA_GROUP_INSTANCE_ID": "bench-worker-0"},
}


def recovery_metric(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith('forethought_recovery_seconds{cause="start"}'):
                return line.split()[-1]
    return "-"


async def measure(bootstrap: str, workdir: Path, extra: dict[str, str]) -> tuple[float, str]:
    deployment = await WorkerDeployment.create(bootstrap, f"r{uuid.uuid4().hex[:8]}.", workdir)
    env = deployment.env(FAST_ENGINE_ENV, **extra)
    log = workdir / f"{deployment.prefix}log"
    first = spawn_worker(env, log)
    try:
        wait_ready(deployment.url, first, log_path=log)
        time.sleep(3)  # past the first rebalance's settling
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    killed = time.monotonic()
    second = spawn_worker(env, log)
    try:
        wait_ready(deployment.url, second, timeout=180, log_path=log)
        took = time.monotonic() - killed
        time.sleep(1)  # the metric follows readiness every half second
        return took, recovery_metric(deployment.url)
    finally:
        stop_process(second)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="forethought-recovery-"))
    broker = None
    bootstrap = os.environ.get("FORETHOUGHT_KAFKA_BOOTSTRAP")
    if bootstrap is None:
        broker = LocalBroker()
        bootstrap = broker.start()
    try:
        print(f"{'membership':48} {'SIGKILL -> ready':>16}  {'recovery_seconds{start}':>24}")
        for name, extra in CASES.items():
            took, reported = asyncio.run(measure(bootstrap, workdir, extra))
            print(f"{name:48} {took:14.1f} s  {reported:>24}", flush=True)
    finally:
        if broker is not None:
            broker.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
