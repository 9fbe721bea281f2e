"""A real Apache Kafka broker (KRaft, single node) run from Maven Central jars, without Docker.

``ensure_jars`` downloads the broker's runtime classpath once per version into a cache folder;
``LocalBroker`` formats a fresh data dir and runs ``kafka.Kafka`` as a child process::

    with LocalBroker() as bootstrap:   # "127.0.0.1:<port>"
        ...

Needs a JDK (17+) and Maven. Brokers are stopped by PID only, never by process name.
"""

from __future__ import annotations

import atexit
import base64
import os
import re
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

DEFAULT_VERSION = "3.9.1"
INSTALL_HINT = (
    "install OpenJDK 17 and Maven, or set FORETHOUGHT_KAFKA_BOOTSTRAP, or use `docker compose up`"
)
MARKER = ".complete"
READY_LINE = "Kafka Server started"
LOG4J2_VERSION = "2.24.3"  # Kafka 4.x's own log4j2 version
_live: set[LocalBroker] = set()


class BrokerError(RuntimeError):
    """The local broker (or its jars) could not be provided."""


def find_java() -> str | None:
    """Path of ``java``: ``$JAVA_HOME/bin/java`` if present, else the one on ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home and (candidate := Path(home) / "bin" / "java").is_file():
        return str(candidate)
    return shutil.which("java")


def find_mvn() -> str | None:
    """Path of Maven's ``mvn`` on ``PATH``."""
    return shutil.which("mvn")


def broker_prerequisites_missing(version: str = DEFAULT_VERSION) -> str | None:
    """A human message naming what is missing to run a local broker, or None when all is there.

    Maven is only required while the jars for ``version`` are not cached yet.
    """
    mvn_ok = find_mvn() or (libs_dir(version) / MARKER).is_file()
    missing = [name for name, ok in (("java", find_java()), ("mvn", mvn_ok)) if not ok]
    if not missing:
        return None
    return f"cannot run a local Kafka broker: {' and '.join(missing)} not found; {INSTALL_HINT}"


def libs_dir(version: str = DEFAULT_VERSION, root: Path | None = None) -> Path:
    """Jar folder of ``version`` under ``root`` / ``$FORETHOUGHT_CACHE_DIR`` / ``~/.cache/forethought``."""
    env = os.environ.get("FORETHOUGHT_CACHE_DIR")
    root = root or (Path(env).expanduser() if env else Path.home() / ".cache" / "forethought")
    return root / "kafka" / version / "libs"


def _major(version: str) -> int:
    """Kafka's major version; rejects anything but ``X.Y.Z``."""
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise BrokerError(f"Kafka version must look like 3.9.1, got {version!r}")
    return int(version.split(".")[0])


def _logging_deps(version: str) -> list[tuple[str, str, str]]:
    """The logging binding Kafka's published POMs leave out (best effort for 4.x)."""
    if _major(version) < 4:
        return [("org.slf4j", "slf4j-reload4j", "1.7.36")]
    return [
        ("org.apache.logging.log4j", "log4j-core", LOG4J2_VERSION),
        # Kafka 4.0/4.1 still ship slf4j-api 1.7.36, so the slf4j 1.x binding (not slf4j2-impl)
        ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J2_VERSION),
    ]


def _pom(version: str) -> str:
    deps = [("org.apache.kafka", "kafka_2.13", version), *_logging_deps(version)]
    body = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>forethought.local</groupId><artifactId>kafka-broker-classpath</artifactId>
  <version>{version}</version><packaging>pom</packaging>
  <dependencies>
{body}
  </dependencies>
</project>
"""


def ensure_jars(version: str = DEFAULT_VERSION, cache_root: Path | None = None) -> Path:
    """Return a folder holding the broker's runtime classpath, downloading it with Maven once.

    The download goes into a temp folder that is renamed into place and then marked complete,
    so an interrupted download never looks complete.
    """
    _major(version)
    libs = libs_dir(version, cache_root)
    if (libs / MARKER).is_file():
        return libs
    mvn, java = find_mvn(), find_java()
    if not mvn or not java:
        missing = " and ".join(n for n, p in (("java", java), ("mvn", mvn)) if not p)
        raise BrokerError(f"cannot download Kafka {version} jars: {missing} not found; {INSTALL_HINT}")
    home = libs.parent
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_pom(version), encoding="utf-8")
    tmp = Path(tempfile.mkdtemp(prefix="libs.tmp-", dir=home))
    try:
        _run_maven(mvn, home, tmp)
        (tmp / MARKER).write_text(version + "\n", encoding="utf-8")
        _install(tmp, libs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return libs


def _run_maven(mvn: str, home: Path, out: Path) -> None:
    cmd = [mvn, "-q", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={out}"]
    try:
        done = subprocess.run(cmd, cwd=home, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"`mvn` timed out downloading Kafka jars into {out}") from exc
    if done.returncode != 0:
        tail = _tail(done.stdout + done.stderr)
        raise BrokerError(f"`mvn` failed ({done.returncode}) downloading Kafka jars:\n{tail}")


def _install(tmp: Path, libs: Path) -> None:
    """Move a finished download into place; another process may have won the race."""
    if libs.exists() and not (libs / MARKER).is_file():
        shutil.rmtree(libs, ignore_errors=True)
    try:
        tmp.rename(libs)
    except OSError:
        if not (libs / MARKER).is_file():
            raise


def new_cluster_id() -> str:
    """A cluster id like Kafka's ``Uuid.randomUuid()``: 22-char base64url of 16 random bytes.

    Like Kafka (KAFKA-20072), never containing ``-``: a leading dash makes the storage tool's
    parser take the id for an option (``argument --cluster-id/-t: expected one argument``).
    """
    while "-" in (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")):
        pass
    return cid


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        _signal_group(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


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
    if _major(version) < 4:
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
                 heap: str = "512m", *, overrides: Mapping[str, str] | None = None) -> None:
        _major(version)
        if not re.fullmatch(r"\d+[kKmMgG]?", heap):
            raise BrokerError(f"heap must look like 512m, got {heap!r}")
        self.version, self.heap = version, heap
        self.overrides = dict(overrides or {})
        self.data_dir: Path | None = Path(data_dir) if data_dir else None
        self._own_dir = data_dir is None
        self._proc: subprocess.Popen[bytes] | None = None
        self._bootstrap: str | None = None
        self.port: int | None = None

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
        (data / "bootstrap").write_text(self._bootstrap + "\n")
        return self._bootstrap

    def _prepare_dir(self) -> Path:
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="forethought-kafka-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.data_dir / "kraft-logs", ignore_errors=True)
        for stale in ("broker.log", "console.out", "bootstrap", "broker.pid"):
            (self.data_dir / stale).unlink(missing_ok=True)
        return self.data_dir

    def _write_config(self, data: Path) -> tuple[Path, str]:
        """Write server.properties (on fresh free ports) and the logging config; return
        (properties path, JVM logging flag)."""
        self.port, cport = free_port(), free_port()
        props = data / "server.properties"
        props.write_text(_server_properties(data, self.port, cport, self.overrides), "utf-8")
        name, text, flag = _log_config(self.version, self.log_path)
        (data / name).write_text(text, "utf-8")
        return props, flag.format(data / name)

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
        proc, self._proc, self._bootstrap = self._proc, None, None
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

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    """Brokers run in their own session, so stop any still running when Python exits."""
    for broker in list(_live):
        broker.stop()
