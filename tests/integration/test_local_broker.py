"""Real-broker tests: the session broker, and LocalBroker's own lifecycle (no mocks)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from forethought.ops.process import free_port
from forethought.devkafka import (
    MARKER,
    BrokerError,
    LocalBroker,
    ensure_jars,
    new_cluster_id,
    port_open,
    stop_pidfile,
)


async def _list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


def _assert_gone(pid: int, port: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not port_open(port)


# --------------------------------------------------------------------------- session broker


async def test_produce_consume_round_trip(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}roundtrip"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        deadline = time.monotonic() + 30  # the broker's metadata cache learns of a new topic shortly after
        while topic not in await admin.list_topics() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert topic in await admin.list_topics()
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(10)]
        for key, value in sent:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}group",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        got: list[tuple[bytes | None, bytes | None]] = []
        while len(got) < len(sent):
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"timed out after {len(got)} of {len(sent)} records"
            got += [(r.key, r.value) for records in batches.values() for r in records]
        await consumer.commit()
    finally:
        await consumer.stop()
    assert sorted(got) == sorted(sent)


async def test_producing_to_missing_topic_does_not_create_it(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}never-declared"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=3000)
    await producer.start()
    try:
        with pytest.raises(KafkaError):  # metadata for the topic never arrives
            await producer.send_and_wait(topic, b"x")
    finally:
        await producer.stop()
    assert topic not in await _list_topics(kafka_bootstrap)


# --------------------------------------------------------------------------- LocalBroker itself


needs_local_broker = pytest.mark.usefixtures("local_broker_prerequisites")


@needs_local_broker
async def test_second_broker_starts_serves_and_stops(tmp_path: Path) -> None:
    broker = LocalBroker(data_dir=tmp_path / "kafka")
    bootstrap = broker.start(timeout=90)
    pid, port = broker.pid, broker.port
    assert pid is not None and port is not None
    try:
        assert bootstrap == broker.bootstrap == f"127.0.0.1:{port}"
        assert (tmp_path / "kafka" / "bootstrap").read_text().strip() == bootstrap
        assert int((tmp_path / "kafka" / "broker.pid").read_text()) == pid
        assert port_open(port)
        assert not [t for t in await _list_topics(bootstrap) if not t.startswith("__")]
    finally:
        broker.stop()
    _assert_gone(pid, port)
    assert not (tmp_path / "kafka" / "broker.pid").exists()
    with pytest.raises(BrokerError):
        _ = broker.bootstrap


@needs_local_broker
def test_context_manager_and_stop_twice_is_harmless() -> None:
    broker = LocalBroker()
    with broker as bootstrap:
        pid, port = broker.pid, broker.port
        assert pid is not None and port is not None
        assert bootstrap.endswith(f":{port}") and port_open(port)
        data_dir = broker.data_dir
    broker.stop()
    broker.stop()
    _assert_gone(pid, port)
    assert data_dir is not None and not data_dir.exists()  # its own temp dir is cleaned up


@needs_local_broker
def test_stop_pidfile_stops_a_broker_by_its_pid(tmp_path: Path) -> None:
    broker = LocalBroker(data_dir=tmp_path)
    broker.start()
    pid, port = broker.pid, broker.port
    assert pid is not None and port is not None
    try:
        assert stop_pidfile(tmp_path) is True
        assert not port_open(port)
        assert stop_pidfile(tmp_path) is False  # pid file gone: nothing to do
    finally:
        broker.stop()  # reaps the child
    _assert_gone(pid, port)


def test_stop_pidfile_leaves_non_kafka_processes_alone(tmp_path: Path) -> None:
    (tmp_path / "broker.pid").write_text(f"{os.getpid()}\n")
    assert stop_pidfile(tmp_path) is False
    (tmp_path / "broker.pid").write_text("not-a-pid\n")
    assert stop_pidfile(tmp_path) is False


@needs_local_broker
def test_jvm_that_dies_at_once_raises_with_its_output(tmp_path: Path) -> None:
    broker = LocalBroker(data_dir=tmp_path, heap="1k")
    with pytest.raises(BrokerError) as err:
        broker.start(timeout=30)
    message = str(err.value)
    assert "exited with code" in message
    assert "Too small" in message and "heap" in message  # the JVM's own words, from its output
    assert broker.pid is None and not (tmp_path / "broker.pid").exists()


@needs_local_broker
def test_invalid_config_is_reported_before_the_broker_starts(tmp_path: Path) -> None:
    broker = LocalBroker(data_dir=tmp_path, overrides={"num.io.threads": "banana"})
    with pytest.raises(BrokerError, match=r"banana for configuration num\.io\.threads"):
        broker.start(timeout=30)


@needs_local_broker
def test_broker_that_dies_during_startup_reports_the_cause_from_its_log(tmp_path: Path) -> None:
    with socket.socket() as busy:  # the broker's listener port is taken
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port, cport = busy.getsockname()[1], free_port()
        listeners = {
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        }
        broker = LocalBroker(data_dir=tmp_path, overrides=listeners)
        with pytest.raises(BrokerError) as err:
            broker.start(timeout=60)
    message = str(err.value)
    assert "exited with code" in message
    assert f"failed to bind to 127.0.0.1:{port}: Address already in use" in message
    assert "last lines of broker.log" in message
    assert (tmp_path / "broker.log").is_file()  # kept for inspection


@needs_local_broker
def test_jars_are_cached_with_a_completion_marker() -> None:
    libs = ensure_jars()
    assert (libs / MARKER).is_file()
    assert any(p.name.startswith("kafka_2.13-") for p in libs.glob("*.jar"))
    assert ensure_jars() == libs


@needs_local_broker
def test_partial_download_is_never_taken_for_complete(tmp_path: Path) -> None:
    libs = tmp_path / "kafka" / "3.9.1" / "libs"
    libs.mkdir(parents=True)
    (libs / "half-downloaded.jar").write_bytes(b"")  # no completion marker
    assert ensure_jars("3.9.1", cache_root=tmp_path) == libs
    assert (libs / MARKER).is_file() and not (libs / "half-downloaded.jar").exists()
    assert any(p.name.startswith("kafka_2.13-3.9.1") for p in libs.glob("*.jar"))
    assert not list(libs.parent.glob("libs.tmp-*"))


def test_missing_tools_give_an_actionable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(BrokerError, match=r"java and mvn not found.*install OpenJDK 17 and Maven"):
        ensure_jars("3.9.1", cache_root=tmp_path)
    assert not (tmp_path / "kafka" / "3.9.1" / "libs").exists()


def test_cluster_id_looks_like_kafkas() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_]{22}", i) for i in ids)  # base64url without "-"
