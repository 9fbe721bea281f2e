"""A local broker that outlives the command that started it: ``forethought kafka start | stop | status``.

The broker is the one the demo and the tests run (:class:`~forethought.devkafka.broker.LocalBroker`),
listening on 127.0.0.1 only, detached from the starting process. Its folder (default
``~/.cache/forethought/local-broker``) holds its data (``kraft-logs/``, kept across restarts), its logs
(``broker.log``, ``console.out``), its configuration and a state file, ``state.json``::

    {"pid": 4242, "bootstrap": "127.0.0.1:9092", "port": 9092, "version": "3.9.1", ...}

A state file whose process is gone, or is no longer this folder's broker (a reused PID), is stale:
it is reported as "not running" and removed; such a process is never signalled.
"""

from __future__ import annotations

import errno
import fcntl
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from forethought.devkafka.broker import LocalBroker, _pid_alive, _read, terminate_group
from forethought.devkafka.jars import DEFAULT_VERSION, BrokerError, cache_root

__all__ = ["DEFAULT_PORT", "BrokerState", "PortInUse", "default_dir", "running", "start", "stop"]

DEFAULT_PORT = 9092  # the settings' default bootstrap is 127.0.0.1:9092
STATE = "state.json"


class PortInUse(BrokerError):
    """The port asked for is already taken on 127.0.0.1."""


@dataclass(frozen=True)
class BrokerState:
    """What ``state.json`` records about a background broker."""

    pid: int
    bootstrap: str
    port: int
    version: str
    data_dir: str
    log: str
    started_at: float

    @property
    def export_line(self) -> str:
        """The shell line that points Forethought at this broker.

        >>> BrokerState(1, "127.0.0.1:9092", 9092, "3.9.1", "/d", "/d/broker.log", 0.0).export_line
        'export FORETHOUGHT_KAFKA_BOOTSTRAP=127.0.0.1:9092'
        """
        return f"export FORETHOUGHT_KAFKA_BOOTSTRAP={self.bootstrap}"


def default_dir() -> Path:
    """``<cache>/local-broker``: ``$FORETHOUGHT_CACHE_DIR`` or ``~/.cache/forethought``."""
    return cache_root() / "local-broker"


def read_state(data_dir: Path) -> BrokerState | None:
    """The state file's content, or None when it is missing or unreadable."""
    try:
        return BrokerState(**json.loads((Path(data_dir) / STATE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """True when ``pid`` is alive and is the Kafka broker run from ``data_dir``'s configuration."""
    cmdline = _read(Path(f"/proc/{pid}/cmdline")).split("\0")
    return _pid_alive(pid) and "kafka.Kafka" in cmdline and str(data_dir / "server.properties") in cmdline


def _forget(data_dir: Path) -> None:
    for name in (STATE, "broker.pid", "bootstrap"):
        (data_dir / name).unlink(missing_ok=True)


def _pid_file(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "broker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def running(data_dir: Path) -> tuple[BrokerState | None, bool]:
    """``(state, stale)``: the live broker's state (or None), and whether a stale state file was removed.

    A broker that is still starting (its pid file is there, its state file not yet) is left alone.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    state = read_state(data_dir)
    if state is not None and _is_our_broker(state.pid, data_dir):
        return state, False
    pid = _pid_file(data_dir)
    if state is None and pid is not None and _is_our_broker(pid, data_dir):
        return None, False
    stale = state is not None or (data_dir / "broker.pid").exists()
    if stale:
        _forget(data_dir)
    return None, stale


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM the broker's process group, SIGKILL it after ``timeout`` seconds, and wait until it is gone."""
    terminate_group(pid, timeout, wait_killed=True)


def check_port_free(port: int) -> None:
    """Raise :class:`PortInUse` when something already listens on ``127.0.0.1:port``."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Kafka's own listener does
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                why = "is already in use" if exc.errno == errno.EADDRINUSE else "needs privileges"
                raise PortInUse(f"port {port} on 127.0.0.1 {why}: stop what listens there, "
                                f"or choose another port with --port") from exc
            raise


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """One ``start``/``stop`` at a time per folder."""
    with open(data_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def start(data_dir: Path, port: int = DEFAULT_PORT, version: str = DEFAULT_VERSION, heap: str = "512m",
          timeout: float = 90) -> tuple[BrokerState, bool]:
    """Start the broker in the background unless it already runs; returns ``(state, started_now)``.

    Topics and offsets from a previous run in ``data_dir`` are kept. Raises :class:`PortInUse` before
    anything starts when the port is taken, :class:`BrokerError` when the broker fails to start.
    """
    if not 0 < port < 65536:
        raise BrokerError(f"port must be between 1 and 65535, got {port}")
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        state, _ = running(data_dir)
        if state is not None:
            return state, False
        check_port_free(port)
        broker = LocalBroker(version, data_dir, heap, port=port, keep_data=True)
        bootstrap = broker.start(timeout)
        assert broker.pid is not None
        state = BrokerState(broker.pid, bootstrap, port, version, str(data_dir), str(broker.log_path), time.time())
        (data_dir / STATE).write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
        broker.detach()
        return state, True


def stop(data_dir: Path, timeout: float = 30) -> tuple[BrokerState | None, bool]:
    """Stop the background broker: SIGTERM, then SIGKILL after ``timeout``.

    Returns ``(state, stale)``: the state of the broker that was stopped (None when none ran), and
    whether a stale state file was removed instead. Data and logs stay for the next ``start``.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    if not data_dir.is_dir():
        return None, False
    with _locked(data_dir):
        state, stale = running(data_dir)
        pid = state.pid if state is not None else _pid_file(data_dir)
        if pid is not None and _is_our_broker(pid, data_dir):  # a state file lost: the pid file still says
            _terminate(pid, timeout)
        _forget(data_dir)
        return state, stale
