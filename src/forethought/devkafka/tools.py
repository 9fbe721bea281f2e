"""Kafka's own command line tools (``kafka-topics.sh`` and friends) run from the cached jars.

``forethought kafka tool <name> [args...]`` is a thin wrapper: ``java -cp <jars> <main class> args``,
with ``--bootstrap-server`` added from the settings when not given. The main class is looked up in
the jars themselves, so the same names work across Kafka versions that moved a tool (3.9 keeps
``ConsoleProducer`` in the core jar and ``ConsoleConsumer`` in ``kafka-tools``, for instance).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from forethought.devkafka.jars import (
    DEFAULT_VERSION,
    INSTALL_HINT,
    BrokerError,
    ensure_tool_jars,
    find_java,
    major_version,
)

__all__ = ["TOOLS", "main_class", "tool_command", "with_bootstrap"]

# name: (what it does, main classes to look for, newest first); the names of Kafka's bin/kafka-<name>.sh
TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "topics": ("list, create, describe, alter and delete topics",
               ("org.apache.kafka.tools.TopicCommand", "kafka.admin.TopicCommand")),
    "console-consumer": ("print records of a topic",
                         ("org.apache.kafka.tools.consumer.ConsoleConsumer", "kafka.tools.ConsoleConsumer")),
    "console-producer": ("send lines from stdin as records",
                         ("org.apache.kafka.tools.ConsoleProducer", "kafka.tools.ConsoleProducer")),
    "consumer-groups": ("list and describe consumer groups (offsets, lag, members); reset offsets",
                        ("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                         "kafka.admin.ConsumerGroupCommand")),
    "get-offsets": ("earliest/latest offsets of topic partitions",
                    ("org.apache.kafka.tools.GetOffsetShell", "kafka.tools.GetOffsetShell")),
    "configs": ("describe and alter topic, broker and client configs",
                ("org.apache.kafka.tools.ConfigCommand", "kafka.admin.ConfigCommand")),
    "delete-records": ("delete records up to an offset", ("org.apache.kafka.tools.DeleteRecordsCommand",)),
    "log-dirs": ("sizes of partitions on disk", ("org.apache.kafka.tools.LogDirsCommand",)),
    "broker-api-versions": ("the API versions the broker supports",
                            ("org.apache.kafka.tools.BrokerApiVersionsCommand",
                             "kafka.admin.BrokerApiVersionsCommand")),
    "metadata-quorum": ("the KRaft controller quorum's status", ("org.apache.kafka.tools.MetadataQuorumCommand",)),
}
_BOOTSTRAP_FLAGS = ("--bootstrap-server", "--bootstrap-controller", "--broker-list")
_NO_BOOTSTRAP = ("--help", "-h", "--version")


def with_bootstrap(args: list[str], bootstrap: str) -> list[str]:
    """``args`` with ``--bootstrap-server`` prepended, unless they name a server (or ask for help).

    >>> with_bootstrap(["--list"], "127.0.0.1:9092")
    ['--bootstrap-server', '127.0.0.1:9092', '--list']
    >>> with_bootstrap(["--bootstrap-server=h:1", "--list"], "127.0.0.1:9092")
    ['--bootstrap-server=h:1', '--list']
    >>> with_bootstrap(["--help"], "127.0.0.1:9092")
    ['--help']
    """
    if any(a.split("=", 1)[0] in _BOOTSTRAP_FLAGS or a in _NO_BOOTSTRAP for a in args):
        return list(args)
    return ["--bootstrap-server", bootstrap, *args]


def main_class(libs: Path, name: str) -> str:
    """The first of the tool's main classes that the jars in ``libs`` hold."""
    if name not in TOOLS:
        raise BrokerError(f"unknown Kafka tool {name!r}; one of: {', '.join(TOOLS)}")
    entries: set[str] = set()
    for jar in sorted(libs.glob("kafka*.jar")):
        with zipfile.ZipFile(jar) as archive:
            entries.update(n for n in archive.namelist() if n.endswith(".class"))
    for candidate in TOOLS[name][1]:
        if candidate.replace(".", "/") + ".class" in entries:
            return candidate
    raise BrokerError(f"Kafka tool {name!r} is not in the jars of {libs} (looked for {', '.join(TOOLS[name][1])})")


def _log_config(version: str, home: Path) -> str:
    """Write the tools' logging config (warnings and errors to stderr, as Kafka's tools-log4j) and return
    the JVM flag that selects it."""
    if major_version(version) < 4:
        name, flag = "tools-log4j.properties", "-Dlog4j.configuration=file:{}"
        text = ("log4j.rootLogger=WARN, stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\n"
                "log4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n"
                "log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
                "log4j.appender.stderr.Target=System.err\n")
    else:
        name, flag = "tools-log4j2.properties", "-Dlog4j2.configurationFile=file:{}"
        text = ("status = warn\nappender.stderr.type = Console\nappender.stderr.name = STDERR\n"
                "appender.stderr.target = SYSTEM_ERR\nappender.stderr.layout.type = PatternLayout\n"
                "appender.stderr.layout.pattern = [%d] %p %m (%c)%n\n"
                "rootLogger.level = WARN\nrootLogger.appenderRef.stderr.ref = STDERR\n")
    path = home / name
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return flag.format(path)


def tool_command(name: str, args: list[str], bootstrap: str, version: str = DEFAULT_VERSION) -> list[str]:
    """The ``java`` command line that runs Kafka tool ``name`` (fetching its jars once)."""
    if name not in TOOLS:
        raise BrokerError(f"unknown Kafka tool {name!r}; one of: {', '.join(TOOLS)}")
    java = find_java()
    if java is None:
        raise BrokerError(f"cannot run Kafka's tools: java not found; {INSTALL_HINT}")
    libs = ensure_tool_jars(version)
    return [java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            _log_config(version, libs.parent), "-cp", f"{libs}/*", main_class(libs, name),
            *with_bootstrap(args, bootstrap)]
