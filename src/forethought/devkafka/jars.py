"""The broker's runtime classpath from Maven Central, fetched once per Kafka version and cached.

Kafka's published POMs leave out the logging binding, so it is added here (reload4j for 3.x, log4j2
for 4.x). The cache lives under ``$FORETHOUGHT_CACHE_DIR`` or ``~/.cache/forethought``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

DEFAULT_VERSION = "3.9.1"
INSTALL_HINT = (
    "install OpenJDK 17 and Maven, or set FORETHOUGHT_KAFKA_BOOTSTRAP, or use `docker compose up`"
)
MARKER = ".complete"
LOG4J2_VERSION = "2.24.3"  # Kafka 4.x's own log4j2 version


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


def broker_prerequisites_missing(version: str = DEFAULT_VERSION, tools: bool = False) -> str | None:
    """A human message naming what is missing to run a local broker (and, with ``tools``, Kafka's
    command line tools), or None when all is there.

    Maven is only required while the jars for ``version`` are not cached yet.
    """
    folders = [libs_dir(version), *([tools_dir(version)] if tools else [])]
    mvn_ok = find_mvn() or all((d / MARKER).is_file() for d in folders)
    missing = [name for name, ok in (("java", find_java()), ("mvn", mvn_ok)) if not ok]
    if not missing:
        return None
    return f"cannot run a local Kafka broker: {' and '.join(missing)} not found; {INSTALL_HINT}"


def cache_root() -> Path:
    """``$FORETHOUGHT_CACHE_DIR``, else ``~/.cache/forethought``."""
    env = os.environ.get("FORETHOUGHT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "forethought"


def libs_dir(version: str = DEFAULT_VERSION, root: Path | None = None) -> Path:
    """Jar folder of ``version`` under ``root`` / ``$FORETHOUGHT_CACHE_DIR`` / ``~/.cache/forethought``."""
    return (root or cache_root()) / "kafka" / version / "libs"


def tools_dir(version: str = DEFAULT_VERSION, root: Path | None = None) -> Path:
    """Folder of Kafka's command line tools' classpath (kafka-tools and the core jar), beside ``libs_dir``."""
    return libs_dir(version, root).parent / "tools"


def major_version(version: str) -> int:
    """Kafka's major version; rejects anything but ``X.Y.Z``."""
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise BrokerError(f"Kafka version must look like 3.9.1, got {version!r}")
    return int(version.split(".")[0])


def _logging_deps(version: str) -> list[tuple[str, str, str]]:
    """The logging binding Kafka's published POMs leave out (best effort for 4.x)."""
    if major_version(version) < 4:
        return [("org.slf4j", "slf4j-reload4j", "1.7.36")]
    return [
        ("org.apache.logging.log4j", "log4j-core", LOG4J2_VERSION),
        # Kafka 4.0/4.1 still ship slf4j-api 1.7.36, so the slf4j 1.x binding (not slf4j2-impl)
        ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J2_VERSION),
    ]


def _pom(version: str, tools: bool = False) -> str:
    kafka = ["kafka_2.13", "kafka-tools"] if tools else ["kafka_2.13"]
    deps = [*(("org.apache.kafka", a, version) for a in kafka), *_logging_deps(version)]
    body = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>forethought.local</groupId><artifactId>kafka-{"tools" if tools else "broker"}-classpath</artifactId>
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
    major_version(version)
    return _ensure(version, libs_dir(version, cache_root), "pom.xml", tools=False)


def ensure_tool_jars(version: str = DEFAULT_VERSION, cache_root: Path | None = None) -> Path:
    """Return a folder holding the classpath of Kafka's command line tools (``kafka-tools`` and
    ``kafka_2.13`` of ``version`` with their dependencies), downloading it with Maven once."""
    major_version(version)
    return _ensure(version, tools_dir(version, cache_root), "tools-pom.xml", tools=True)


def _ensure(version: str, libs: Path, pom_name: str, *, tools: bool) -> Path:
    if (libs / MARKER).is_file():
        return libs
    mvn, java = find_mvn(), find_java()
    if not mvn or not java:
        missing = " and ".join(n for n, p in (("java", java), ("mvn", mvn)) if not p)
        raise BrokerError(f"cannot download Kafka {version} jars: {missing} not found; {INSTALL_HINT}")
    home = libs.parent
    home.mkdir(parents=True, exist_ok=True)
    pom = home / pom_name
    pom.write_text(_pom(version, tools), encoding="utf-8")
    tmp = Path(tempfile.mkdtemp(prefix=f"{libs.name}.tmp-", dir=home))
    try:
        _run_maven(mvn, pom, tmp)
        (tmp / MARKER).write_text(version + "\n", encoding="utf-8")
        _install(tmp, libs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return libs


def _run_maven(mvn: str, pom: Path, out: Path) -> None:
    cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={out}"]
    try:
        done = subprocess.run(cmd, cwd=pom.parent, capture_output=True, text=True, timeout=900)
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


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.splitlines()[-n:])

