"""Integration fixtures: one real Kafka broker per test session.

Where the broker comes from, first match wins:

1. ``FORETHOUGHT_KAFKA_BOOTSTRAP`` (an already running broker);
2. a testcontainers KRaft ``KafkaContainer``, when a Docker engine answers;
3. a ``LocalBroker`` (Maven Central jars + local JDK, see ``forethought.devkafka``).

When none can be had the tests skip, except under ``CI=true`` where they fail.

The local broker also serves SASL_SSL and mutual-TLS SSL listeners (``LocalBroker(secure=True)``);
``kafka_secured`` gives their addresses, CA, client certificate and SCRAM/PLAIN credentials. With an
external broker or a container it starts a secured ``LocalBroker`` of its own, when it can.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, NoReturn

import pytest

from forethought.devkafka import BrokerError, LocalBroker, SecuredAccess, broker_prerequisites_missing

_HERE = Path(__file__).parent
_session_secured: list[SecuredAccess] = []  # the session's LocalBroker's secured listeners, when it has them


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/integration is an ``integration`` test."""
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def missing(what: str) -> NoReturn:
    """Skip for want of ``what``, or fail when running in CI (a silent skip there would hide a broken setup)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI=true)", pytrace=False)
    pytest.skip(what)


def unavailable(reason: str) -> NoReturn:
    """No broker: skip, or fail in CI."""
    missing(f"no Kafka broker for integration tests: {reason}")


def _docker_answers(timeout: float = 5.0) -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _kafka_container_class() -> Any | None:
    """testcontainers' KafkaContainer class, or None when testcontainers is not installed."""
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:
        try:
            from testcontainers.kafka import KafkaContainer  # older testcontainers
        except ImportError:
            return None
    return KafkaContainer


def _start_container(container_class: Any) -> Any:
    """Start a single-node KRaft Kafka container configured like our local broker."""
    container = (
        container_class()
        .with_kraft()
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    try:
        container.start()
    except BaseException:
        with suppress(Exception):
            container.stop()
        raise
    return container


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address (``host:port``) of a real broker for the whole session."""
    if env := os.environ.get("FORETHOUGHT_KAFKA_BOOTSTRAP"):
        yield env
        return
    problems: list[str] = []
    container_class = _kafka_container_class()
    if container_class is not None and _docker_answers():
        try:
            container = _start_container(container_class)
        except Exception as exc:  # noqa: BLE001 - any failure: fall back to the local broker
            problems.append(f"testcontainers Kafka failed to start: {exc}")
        else:
            try:
                yield container.get_bootstrap_server()
            finally:
                container.stop()
            return
    if missing := broker_prerequisites_missing():
        unavailable("; ".join([*problems, missing]))
    broker = LocalBroker(secure=shutil.which("openssl") is not None)  # without openssl: PLAINTEXT only
    try:
        bootstrap = broker.start()
    except BrokerError as exc:
        unavailable("; ".join([*problems, str(exc)]))
    if broker.secured is not None:
        _session_secured.append(broker.secured)
    try:
        yield bootstrap
    finally:
        _session_secured.clear()
        broker.stop()


@pytest.fixture(scope="session")
def kafka_secured(kafka_bootstrap: str) -> Iterator[SecuredAccess]:
    """The SASL_SSL / SSL listeners of a real broker whose PLAINTEXT listener is ``kafka_bootstrap``."""
    if _session_secured:
        yield _session_secured[0]
        return
    if missing := broker_prerequisites_missing():  # an external broker: start a secured local one
        unavailable(missing)
    broker = LocalBroker(secure=True)
    try:
        broker.start()
    except BrokerError as exc:
        unavailable(str(exc))
    assert broker.secured is not None
    try:
        yield broker.secured
    finally:
        broker.stop()


@pytest.fixture
def local_broker_prerequisites() -> None:
    """For tests that start their own ``LocalBroker``: skip (fail in CI) without java/mvn."""
    if missing := broker_prerequisites_missing():
        unavailable(missing)


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic prefix per test, e.g. ``t1a2b3c4d.``."""
    return f"t{uuid.uuid4().hex[:8]}."
