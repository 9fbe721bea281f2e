"""``forethought kafka start | stop | status | tool`` as a user runs them: a real broker in the background,
real records through it, Kafka's own tools reading them back.

One background broker for the module (started by the first test that needs it, stopped at the end
whatever happens); the stop test restarts it once to show that topics survive a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from conftest import missing

from forethought.devkafka import DEFAULT_VERSION, MARKER, broker_prerequisites_missing, port_open, stop_pidfile
from forethought.devkafka.jars import tools_dir
from forethought.devkafka.tools import TOOLS, main_class
from forethought.ops.process import free_port


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``forethought <args>`` as a user would, in its own process."""
    return subprocess.run([sys.executable, "-m", "forethought.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped: only its parent has not reaped it


@dataclass
class Running:
    folder: Path
    port: int
    start: subprocess.CompletedProcess[str]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment after ``export FORETHOUGHT_KAFKA_BOOTSTRAP=...``."""
        return {"FORETHOUGHT_KAFKA_BOOTSTRAP": self.bootstrap}

    def state(self) -> dict[str, object]:
        return dict(json.loads((self.folder / "state.json").read_text()))


def _need_java_and_jars() -> None:
    """Skip without java (or without Maven while jars are not cached); fail instead under CI=true."""
    if absent := broker_prerequisites_missing(tools=True):
        missing(f"cannot run the local broker: {absent}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """``forethought kafka start`` into a fresh folder on a free loopback port; stopped at the end."""
    _need_java_and_jars()
    folder, port = tmp_path_factory.mktemp("local-broker"), free_port()
    try:
        done = _cli("kafka", "start", "--dir", str(folder), "--port", str(port))
        assert done.returncode == 0, done.stderr
        yield Running(folder, port, done)
    finally:
        _cli("kafka", "stop", "--dir", str(folder))
        stop_pidfile(folder)  # should the CLI's stop have failed, no broker outlives the tests


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        deadline = time.monotonic() + 30
        while topic not in await admin.list_topics() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


# --------------------------------------------------------------------------- a running broker


def test_start_runs_the_broker_in_the_background_and_prints_the_export_line(broker: Running) -> None:
    assert broker.start.stdout == f"export FORETHOUGHT_KAFKA_BOOTSTRAP={broker.bootstrap}\n"  # eval "$(...)" works
    assert f"started at {broker.bootstrap}" in broker.start.stderr
    assert str(broker.folder) in broker.start.stderr
    state = broker.state()
    pid = state["pid"]
    assert isinstance(pid, int) and _alive(pid)  # the CLI has exited; the broker has not
    assert port_open(broker.port)
    assert (state["bootstrap"], state["port"]) == (broker.bootstrap, broker.port)
    listeners = (broker.folder / "server.properties").read_text()
    assert f"PLAINTEXT://127.0.0.1:{broker.port}" in listeners and "0.0.0.0" not in listeners  # loopback only
    assert (broker.folder / "broker.log").is_file()


def test_status_says_where_it_runs(broker: Running) -> None:
    done = _cli("kafka", "status", "--dir", str(broker.folder))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"export FORETHOUGHT_KAFKA_BOOTSTRAP={broker.bootstrap}\n"
    assert f"running at {broker.bootstrap}" in done.stderr


def test_start_again_says_it_already_runs(broker: Running) -> None:
    before = broker.state()
    done = _cli("kafka", "start", "--dir", str(broker.folder), "--port", str(broker.port))
    assert done.returncode == 0, done.stderr
    assert "already running" in done.stderr
    assert done.stdout == f"export FORETHOUGHT_KAFKA_BOOTSTRAP={broker.bootstrap}\n"
    assert broker.state() == before  # the same broker, not a second one


async def test_records_go_through_it_and_kafkas_tools_show_them(broker: Running) -> None:
    topic, group = "local.tools-check", "forethought-local-check"
    created = _cli("kafka", "tool", "topics", "--create", "--topic", topic, "--partitions", "1",
                   env=broker.env)  # --bootstrap-server comes from the settings
    assert created.returncode == 0, created.stderr
    assert f"Created topic {topic}" in created.stdout

    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello from forethought", key=b"cust-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=20_000)
        assert [r.value for records in batches.values() for r in records] == [b"hello from forethought"]
        await consumer.commit()
    finally:
        await consumer.stop()

    listed = _cli("kafka", "tool", "topics", "--list", env=broker.env)
    assert listed.returncode == 0 and topic in listed.stdout.split(), listed.stderr
    printed = _cli("kafka", "tool", "console-consumer", "--topic", topic, "--from-beginning",
                   "--max-messages", "1", "--timeout-ms", "30000", env=broker.env)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.splitlines() == ["hello from forethought"]

    groups = _cli("kafka", "tool", "consumer-groups", "--list", env=broker.env)
    assert group in groups.stdout.split(), groups.stderr
    described = _cli("kafka", "tool", "consumer-groups", "--describe", "--group", group, env=broker.env)
    assert described.returncode == 0, described.stderr
    row = next(line.split() for line in described.stdout.splitlines() if line.startswith(group))
    assert row[:6] == [group, topic, "0", "1", "1", "0"]  # group, topic, partition, offset 1, log end 1, lag 0


async def test_a_bootstrap_server_given_to_a_tool_wins_over_the_settings(broker: Running) -> None:
    await _create_topic(broker.bootstrap, "local.explicit")
    done = _cli("kafka", "tool", "topics", "--list", "--bootstrap-server", broker.bootstrap,
                env={"FORETHOUGHT_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"})  # nothing listens there
    assert done.returncode == 0, done.stderr
    assert "local.explicit" in done.stdout.split()


def test_a_taken_port_is_one_clear_line_and_starts_nothing(broker: Running, tmp_path: Path) -> None:
    for port in (broker.port, None):  # the running broker's port; a port some other program listens on
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen()
            taken = port or other.getsockname()[1]
            done = _cli("kafka", "start", "--dir", str(tmp_path / str(taken)), "--port", str(taken))
        assert done.returncode == 1
        assert done.stdout == ""
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and f"port {taken} on 127.0.0.1 is already in use" in lines[0], done.stderr
        assert "--port" in lines[0]  # what to do about it
        assert not (tmp_path / str(taken) / "state.json").exists()
        assert not (tmp_path / str(taken) / "broker.pid").exists()


async def test_stop_is_graceful_status_then_fails_and_a_restart_keeps_topics(broker: Running) -> None:
    await _create_topic(broker.bootstrap, "local.kept")
    pid = broker.state()["pid"]
    assert isinstance(pid, int)
    stopped = _cli("kafka", "stop", "--dir", str(broker.folder))
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped the broker at {broker.bootstrap} (pid {pid})" in stopped.stderr
    assert not _alive(pid) and not port_open(broker.port)
    log = (broker.folder / "broker.log").read_text()
    assert "[BrokerServer id=1] shut down completed" in log  # SIGTERM: a clean shutdown, not a kill
    status = _cli("kafka", "status", "--dir", str(broker.folder))
    assert status.returncode != 0 and status.stdout == ""
    assert "not running" in status.stderr
    again = _cli("kafka", "stop", "--dir", str(broker.folder))
    assert again.returncode == 0 and "not running" in again.stderr

    restarted = _cli("kafka", "start", "--dir", str(broker.folder), "--port", str(broker.port))
    assert restarted.returncode == 0, restarted.stderr
    listed = _cli("kafka", "tool", "topics", "--list", env=broker.env)
    assert {"local.kept", "local.tools-check"} <= set(listed.stdout.split()), listed.stderr


# --------------------------------------------------------------------------- no broker needed


def test_kafka_fetch_brings_the_tools_and_each_tool_is_in_the_jars() -> None:
    _need_java_and_jars()
    done = _cli("kafka", "fetch")
    assert done.returncode == 0, done.stderr
    version = os.environ.get("FORETHOUGHT_KAFKA_VERSION", DEFAULT_VERSION)
    libs = tools_dir(version)
    assert f"tools' jars in {libs}" in done.stdout
    assert (libs / MARKER).is_file() and (libs / f"kafka-tools-{version}.jar").is_file()
    found = {name: main_class(libs, name) for name in TOOLS}  # raises when a tool's class is missing
    assert found["console-consumer"] == "org.apache.kafka.tools.consumer.ConsoleConsumer"
    assert found["consumer-groups"] == "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
    assert found["topics"] == "org.apache.kafka.tools.TopicCommand"


def test_a_stale_state_file_is_reported_and_removed(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now belongs to nothing
    state = {"pid": gone.pid, "bootstrap": "127.0.0.1:9092", "port": 9092, "version": "3.9.1",
             "data_dir": str(tmp_path), "log": str(tmp_path / "broker.log"), "started_at": 0.0}
    (tmp_path / "state.json").write_text(json.dumps(state))
    (tmp_path / "broker.pid").write_text(f"{gone.pid}\n")
    status = _cli("kafka", "status", "--dir", str(tmp_path))
    assert status.returncode == 1 and "stale" in status.stderr
    assert not (tmp_path / "state.json").exists() and not (tmp_path / "broker.pid").exists()
    (tmp_path / "broker.pid").write_text(f"{gone.pid}\n")
    stop = _cli("kafka", "stop", "--dir", str(tmp_path))
    assert stop.returncode == 0 and "not running" in stop.stderr
    assert not (tmp_path / "broker.pid").exists()


def test_a_pid_reused_by_another_program_is_never_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "120"])
    try:
        state = {"pid": other.pid, "bootstrap": "127.0.0.1:9092", "port": 9092, "version": "3.9.1",
                 "data_dir": str(tmp_path), "log": str(tmp_path / "broker.log"), "started_at": 0.0}
        (tmp_path / "state.json").write_text(json.dumps(state))
        (tmp_path / "broker.pid").write_text(f"{other.pid}\n")
        assert _cli("kafka", "status", "--dir", str(tmp_path)).returncode == 1
        (tmp_path / "state.json").write_text(json.dumps(state))
        stop = _cli("kafka", "stop", "--dir", str(tmp_path))
        assert stop.returncode == 0 and "not running" in stop.stderr
        assert other.poll() is None  # still running: it is not our broker
    finally:
        other.kill()
        other.wait()


def test_status_and_stop_of_a_folder_without_a_broker(tmp_path: Path) -> None:
    status = _cli("kafka", "status", "--dir", str(tmp_path / "nothing-here"))
    assert status.returncode == 1 and status.stdout == ""
    assert re.search(r"not running: no broker in .*nothing-here", status.stderr)
    assert _cli("kafka", "stop", "--dir", str(tmp_path / "nothing-here")).returncode == 0


def test_bad_input_gets_one_line_naming_the_fix(tmp_path: Path) -> None:
    unknown = _cli("kafka", "tool", "kafka-topics")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("unknown Kafka tool 'kafka-topics'; one of: topics, console-consumer, "
                                      "console-producer, consumer-groups, get-offsets, configs, delete-records, "
                                      "log-dirs, broker-api-versions, metadata-quorum")
    listing = _cli("kafka", "tool")
    assert listing.returncode == 2 and "consumer-groups" in listing.stdout
    bad_port = _cli("kafka", "start", "--dir", str(tmp_path), "--port", "70000")
    assert bad_port.returncode == 1
    assert bad_port.stderr.strip() == "cannot start the local Kafka broker: port must be between 1 and 65535, got 70000"
