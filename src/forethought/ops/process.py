"""Run a worker as a child process: spawn, wait until ready, stop without leaving anything behind.

Used by the demo, the integration tests and the benchmark.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10_000  # the lowest port handed out (below: well-known and registered services)
_picker = random.Random()  # its own generator: a test's random.seed() must not make two processes pick alike
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and that the kernel will not hand to an outgoing connection.

    A port from ``bind(("127.0.0.1", 0))`` lies in the kernel's ephemeral range, which is where every
    outgoing connection takes its local port: between this call and the server's own ``bind``, a Kafka
    client of another worker could take it, and the server would fail with "address already in use"
    (a worker that exits with code 1 before it is ready). So a port below the ephemeral range is drawn
    at random, checked free, and never handed out twice by this process (the strategy of Google's
    ``portpicker``, without a dependency for twenty lines). Falls back to the kernel's choice where the
    range cannot be read or leaves no room below it.

    >>> first, second = free_port(), free_port()
    >>> first != second and 1024 < first < 65536
    True
    """
    low = ephemeral_low()
    for _ in range(200):
        if low <= LOWEST_PORT + 1_000:
            break
        port = _picker.randrange(LOWEST_PORT, low)
        if port not in _handed_out and bindable(port):
            _handed_out.add(port)
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (0 when it cannot be read, as off Linux)."""
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def bindable(port: int) -> bool:
    """Whether a server could bind ``port`` on 127.0.0.1 now (nothing listens on it, nothing is connected from it)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def spawn_worker(env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``forethought worker`` with ``env`` added to this process's environment."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "forethought.cli", "worker"], env={**os.environ, **env},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )


def log_tail(log_path: Path | None, limit: int = 4000) -> str:
    """The last ``limit`` characters of a worker's log, headed for an error message ("" without a log).

    >>> log_tail(None)
    ''
    """
    if log_path is None or not log_path.exists():
        return ""
    return "\n--- worker log tail ---\n" + log_path.read_text(errors="replace")[-limit:]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120, log_path: Path | None = None) -> None:
    """Poll ``url``/ready until it answers 200; fail early when the worker exits.

    With ``log_path`` (the log given to :func:`spawn_worker`) the error ends with that log's tail, so a
    worker that could not start says why.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with code {proc.returncode} before it was ready{log_tail(log_path)}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.3)
    raise TimeoutError(f"worker not ready within {timeout:g}s{log_tail(log_path)}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM the process group, SIGKILL after ``timeout``; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


@contextlib.contextmanager
def running_worker(env: Mapping[str, str], log_path: Path, url: str,
                   timeout: float = 120) -> Iterator[subprocess.Popen[bytes]]:
    """A ready worker for the duration of the block; its log's tail is shown when it fails to start."""
    proc = spawn_worker(env, log_path)
    try:
        wait_ready(url, proc, timeout, log_path)
        yield proc
    finally:
        stop_process(proc)
