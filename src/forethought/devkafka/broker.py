"""A real Apache Kafka broker (KRaft, single node) run from Maven Central jars, without Docker.

``ensure_jars`` downloads the broker's runtime classpath once per version into a cache folder;
``LocalBroker`` formats a fresh data dir and runs ``kafka.Kafka`` as a child process::

    with LocalBroker() as bootstrap:   # "127.0.0.1:<port>"
        ...

``LocalBroker(secure=True)`` adds SASL_SSL and SSL listeners (see :mod:`forethought.devkafka.secure`); its
``secured`` attribute then says how to reach them.

Needs a JDK (17+) and Maven. Brokers are stopped by PID only, never by process name.
"""

from __future__ import annotations

import atexit
import base64
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from forethought.devkafka.jars import (  # re-exported: the broker's public API includes its jars
    DEFAULT_VERSION,
    INSTALL_HINT,
    MARKER,
    BrokerError,
    broker_prerequisites_missing,
    ensure_jars,
    find_java,
    find_mvn,
    libs_dir,
    major_version,
)
from forethought.devkafka.secure import SecuredAccess, create_scram_users, make_pki, secure_properties
from forethought.ops.process import free_port

__all__ = [
    "DEFAULT_VERSION", "INSTALL_HINT", "MARKER", "BrokerError", "LocalBroker", "SecuredAccess",
    "broker_prerequisites_missing", "ensure_jars", "find_java", "find_mvn", "libs_dir", "new_cluster_id", "port_open",
    "stop_pidfile",
]

READY_LINE = "Kafka Server started"
_live: set[LocalBroker] = set()


def new_cluster_id() -> str:
    """A cluster id like Kafka's ``Uuid.randomUuid()``: 22-char base64url of 16 random bytes.

    Like Kafka (KAFKA-20072), never containing ``-``: a leading dash makes the storage tool's
    parser take the id for an option (``argument --cluster-id/-t: expected one argument``).
    """
    while "-" in (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")):
        pass
    return cid


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when a TCP connect to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.splitlines()[-n:])


def _first_errors(log: str, limit: int = 5) -> str:
    """The first ERROR/FATAL entries of a log, each with its exception line (the cause)."""
    lines = log.splitlines()
    hits = [i for i, line in enumerate(lines) if re.search(r"\] (ERROR|FATAL) ", line)][:limit]
    out: list[str] = []
    for i in hits:
        out.append(lines[i])
        if i + 1 < len(lines) and not lines[i + 1].startswith("["):
            out.append(lines[i + 1])
    return "\n".join(out)


def _pid_alive(pid: int) -> bool:
    """True for a live, non-zombie process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session=True: the broker leads its own group
    except (ProcessLookupError, PermissionError):
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop_pidfile(data_dir: Path, timeout: float = 20) -> bool:
    """Stop a broker started earlier (maybe by another process) via ``<data_dir>/broker.pid``.

    Returns True when a live Kafka broker was signalled. A stale pid file, or a PID that now
    belongs to something other than ``kafka.Kafka``, is left alone (the file is removed).
    """
    pidfile = Path(data_dir) / "broker.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return False
    if not (_pid_alive(pid) and "kafka.Kafka" in _read(Path(f"/proc/{pid}/cmdline"))):
        pidfile.unlink(missing_ok=True)
        return False
    terminate_group(pid, timeout)
    pidfile.unlink(missing_ok=True)
    return True


def terminate_group(pid: int, timeout: float, *, wait_killed: bool = False) -> None:
    """SIGTERM the process group of ``pid``, SIGKILL it after ``timeout`` seconds (then, with
    ``wait_killed``, wait until it is gone)."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        _signal_group(pid, signal.SIGKILL)
        while wait_killed and _pid_alive(pid):
            time.sleep(0.1)


def _server_properties(data: Path, port: int, cport: int, extra: Mapping[str, str]) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(data / "kraft-logs"),
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "log.cleaner.dedupe.buffer.size": "2097152",
        "log.cleaner.backoff.ms": "1000",
    }
    props.update(extra)
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _log_config(version: str, log: Path) -> tuple[str, str, str]:
    """(file name, contents, JVM flag) for Kafka's logging backend: log4j 1 for 3.x, log4j2 for 4.x."""
    if major_version(version) < 4:
        text = ("log4j.rootLogger=INFO, file\n"
                "log4j.appender.file=org.apache.log4j.FileAppender\n"
                f"log4j.appender.file.File={log}\n"
                "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
                "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n")
        return "log4j.properties", text, "-Dlog4j.configuration=file:{}"
    text = ("status = warn\nshutdownHook = disable\n"
            "appender.file.type = File\nappender.file.name = FILE\n"
            f"appender.file.fileName = {log}\nappender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\nrootLogger.appenderRef.file.ref = FILE\n")
    return "log4j2.properties", text, "-Dlog4j2.configurationFile=file:{}"


class LocalBroker:
    """One single-node KRaft broker (combined broker+controller) on 127.0.0.1."""

    def __init__(self, version: str = DEFAULT_VERSION, data_dir: Path | None = None,
                 heap: str = "512m", *, overrides: Mapping[str, str] | None = None, secure: bool = False,
                 port: int | None = None, keep_data: bool = False) -> None:
        """``port``: the PLAINTEXT listener's (default: a free one); ``keep_data``: reuse the topics and
        offsets a previous run left in ``data_dir`` instead of formatting it afresh."""
        major_version(version)
        if not re.fullmatch(r"\d+[kKmMgG]?", heap):
            raise BrokerError(f"heap must look like 512m, got {heap!r}")
        self.version, self.heap = version, heap
        self.overrides = dict(overrides or {})
        self.data_dir: Path | None = Path(data_dir) if data_dir else None
        self._own_dir = data_dir is None
        self._fixed_port, self.keep_data = port, keep_data and data_dir is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._bootstrap: str | None = None
        self.port: int | None = None
        self.secure = secure
        self.secured: SecuredAccess | None = None  # set once a secure broker serves
        self._pending_secured: SecuredAccess | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>`` of the running broker."""
        if self._bootstrap is None:
            raise BrokerError("broker is not running")
        return self._bootstrap

    @property
    def pid(self) -> int | None:
        """PID of the broker JVM (also its process group id), None before start."""
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path:
        """The broker's log4j log file."""
        assert self.data_dir is not None, "broker was never started"
        return self.data_dir / "broker.log"

    def start(self, timeout: float = 90) -> str:
        """Format a fresh data dir, start the JVM and wait until it serves; return the bootstrap."""
        if self._proc is not None:
            return self.bootstrap
        libs = ensure_jars(self.version)
        java = find_java()
        if java is None:
            raise BrokerError(f"cannot run a local Kafka broker: java not found; {INSTALL_HINT}")
        data = self._prepare_dir()
        props, logging = self._write_config(data)
        classpath = f"{libs}/*"
        if not (self.keep_data and (data / "kraft-logs" / "meta.properties").is_file()):
            self._format([java, "-Xmx256m", logging, "-cp", classpath], props)
        cmd = [java, f"-Xmx{self.heap}", f"-Xms{self.heap}", logging,
               "-Djava.awt.headless=true", f"-Dkafka.logs.dir={data}",
               "-cp", classpath, "kafka.Kafka", str(props)]
        with open(data / "console.out", "wb") as out:
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        _live.add(self)
        (data / "broker.pid").write_text(f"{self._proc.pid}\n")
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self._bootstrap = f"127.0.0.1:{self.port}"
        if self._pending_secured is not None:
            try:
                create_scram_users(java, classpath, self.version, self._bootstrap, self._pending_secured.password)
            except BaseException:
                self.stop()
                raise
            self.secured = self._pending_secured
        (data / "bootstrap").write_text(self._bootstrap + "\n")
        return self._bootstrap

    def _prepare_dir(self) -> Path:
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="forethought-kafka-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.keep_data:
            shutil.rmtree(self.data_dir / "kraft-logs", ignore_errors=True)
        shutil.rmtree(self.data_dir / "tls", ignore_errors=True)
        for stale in ("broker.log", "console.out", "bootstrap", "broker.pid"):
            (self.data_dir / stale).unlink(missing_ok=True)
        return self.data_dir

    def _write_config(self, data: Path) -> tuple[Path, str]:
        """Write server.properties (on fresh free ports) and the logging config; return
        (properties path, JVM logging flag)."""
        self.port, cport = self._fixed_port or free_port(), free_port()
        while cport == self.port:  # a fixed port that is free now may also be the one the kernel picks
            cport = free_port()
        props = data / "server.properties"
        extra = {**self._secure_config(data, cport), **self.overrides}
        props.write_text(_server_properties(data, self.port, cport, extra), "utf-8")
        name, text, flag = _log_config(self.version, self.log_path)
        (data / name).write_text(text, "utf-8")
        return props, flag.format(data / name)

    def _secure_config(self, data: Path, cport: int) -> dict[str, str]:
        """Secure mode: make the test PKI and return the SASL_SSL/SSL listener properties."""
        if not self.secure:
            return {}
        assert self.port is not None
        sasl_port, ssl_port = free_port(), free_port()
        tls = data / "tls"
        key_password, password = make_pki(tls), secrets.token_urlsafe(16)
        self._pending_secured = SecuredAccess(
            f"127.0.0.1:{sasl_port}", f"127.0.0.1:{ssl_port}", tls / "ca.pem", tls / "client.pem",
            tls / "client.key", key_password, password=password)
        return secure_properties(self.port, cport, sasl_port, ssl_port, tls, password)

    def _format(self, jvm: list[str], props: Path) -> None:
        cmd = [*jvm, "kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(props)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            tail = _tail(done.stdout + done.stderr)
            raise BrokerError(f"kafka StorageTool format failed ({done.returncode}):\n{tail}")

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None and self.port is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._fail(f"broker JVM exited with code {self._proc.returncode}")
            if READY_LINE in _read(self.log_path) and port_open(self.port):
                return
            time.sleep(0.2)
        self._fail(f"broker not ready within {timeout:g}s")

    def _fail(self, reason: str) -> None:
        assert self.data_dir is not None
        parts = [f"local Kafka {self.version} broker failed: {reason} (data dir {self.data_dir})"]
        if errors := _first_errors(_read(self.log_path)):
            parts.append(f"--- first errors in broker.log ---\n{errors}")
        for path in (self.log_path, self.data_dir / "console.out"):
            if tail := _tail(_read(path)):
                parts.append(f"--- last lines of {path.name} ---\n{tail}")
        self._own_dir = False  # keep the logs for inspection
        raise BrokerError("\n".join(parts))

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the broker's process group, SIGKILL after ``timeout``. Idempotent."""
        proc, self._proc, self._bootstrap, self.secured = self._proc, None, None, None
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            _live.discard(self)
        if self.data_dir is not None:
            (self.data_dir / "broker.pid").unlink(missing_ok=True)
            (self.data_dir / "bootstrap").unlink(missing_ok=True)
            if self._own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def detach(self) -> None:
        """Leave the running broker running after this process exits (not stopped at exit); its
        ``broker.pid`` file stays, for :func:`stop_pidfile`."""
        self._proc, self._own_dir = None, False
        _live.discard(self)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    """Brokers run in their own session, so stop any still running when Python exits."""
    for broker in list(_live):
        broker.stop()
