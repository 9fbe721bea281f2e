"""Part 2b: faust-streaming's own ceiling, a no-op agent (``noop_agent.py``) over the worker's backlog."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from forethought.ops.process import free_port, stop_process

from .common import E2E_TIMEOUT
from .kafka import Deployment

AGENT = Path(__file__).resolve().parent / "noop_agent.py"


def noop_app_id(dep: Deployment) -> str:
    """The no-op agent's application id: a consumer group of its own, so it reads the backlog from the start."""
    return f"{dep.app_id}-noop"


def spawn_noop(dep: Deployment, result: Path, expected: int) -> subprocess.Popen[bytes]:
    """Start the no-op agent with the worker's environment (same batching, same app settings)."""
    env = dep.env(FORETHOUGHT_APP_ID=noop_app_id(dep), FORETHOUGHT_WEB_PORT=str(free_port()),
                  FORETHOUGHT_DATA_DIR=str(dep.workdir / "noop"))
    log = dep.workdir / "noop.log"
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, str(AGENT), str(result), str(expected)], env={**os.environ, **env},
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _read(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    return None


def bench_noop(dep: Deployment, expected: int, timeout: float = E2E_TIMEOUT) -> dict[str, Any]:
    """Run the no-op agent over the deployment's backlog until every event is counted (or ``timeout``)."""
    result = dep.workdir / "noop.json"
    started = time.monotonic()
    proc = spawn_noop(dep, result, expected)
    try:
        seen = None
        while time.monotonic() - started < timeout + 60:  # + start-up and rebalance
            seen = _read(result)
            if seen and seen["done"]:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"no-op agent exited with code {proc.returncode}; log: {dep.workdir / 'noop.log'}")
            time.sleep(0.1)
    finally:
        stop_process(proc)
    return noop_result(seen, expected)


def noop_result(seen: dict[str, Any] | None, expected: int) -> dict[str, Any]:
    """Events/s from the first batch to the last (as the worker's line), and CPU per wall second.

    >>> r = noop_result({"count": 1000, "first_count": 100, "first_at": 1.0, "last_at": 2.0,
    ...                  "first_cpu": 0.5, "last_cpu": 1.4, "batches": 3, "done": True}, 1000)
    >>> r["eps"], round(r["cpu_share"], 2), r["complete"]
    (900.0, 0.9, True)
    """
    out: dict[str, Any] = {"expected": expected, "counted": 0, "complete": False, "eps": None}
    if not seen:
        return out
    out.update(counted=seen["count"], complete=seen["count"] >= expected, batches=seen["batches"])
    elapsed = (seen["last_at"] or 0.0) - (seen["first_at"] or 0.0)
    if elapsed > 0:
        out.update(eps=(seen["count"] - seen["first_count"]) / elapsed, elapsed_s=elapsed,
                   cpu_share=(seen["last_cpu"] - seen["first_cpu"]) / elapsed)
        out["mean_batch_events"] = seen["count"] / seen["batches"]
    return out
