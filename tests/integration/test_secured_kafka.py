"""Secured Kafka through the real broker: SASL_SSL (SCRAM, PLAIN) and mutual TLS for topic creation,
the worker, a sender and the SDK; a wrong password is one clear line from every CLI verb.

The session's local broker serves SASL_SSL and SSL beside PLAINTEXT (``kafka_secured``). The clients
under test use only the secured listeners; the tests check results through PLAINTEXT.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError
from rich.console import Console
from test_senders import eventually, metric_is, outcomes_of, running
from worker_kit import Deployment

from forethought.client import ForethoughtProducer, SyncProducer, events
from forethought.contracts.records import Trigger
from forethought.devkafka import SecuredAccess
from forethought.ops.kafka_security import KafkaAccessError, KafkaSecurity, aiokafka_options, preflight
from forethought.ops.process import free_port, running_worker
from forethought.ops.topics import create_topics, load_catalogue
from forethought.senders.settings import SenderAppSettings, SenderSettings

CLI_TIMEOUT = 120


def security(secured: SecuredAccess, mechanism: str = "SCRAM-SHA-512", password: str | None = None) -> KafkaSecurity:
    """Settings for a SASL_SSL client of the secured broker."""
    env = secured.env(mechanism, password)
    return KafkaSecurity(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=secured.ca_file,
                         kafka_sasl_mechanism=mechanism, kafka_sasl_username=env["FORETHOUGHT_KAFKA_SASL_USERNAME"],
                         kafka_sasl_password=env["FORETHOUGHT_KAFKA_SASL_PASSWORD"])


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``forethought <args>`` with ``env`` added, as a user would."""
    return subprocess.run([sys.executable, "-m", "forethought.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)


async def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    """A topic's effective configuration, read over PLAINTEXT."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        (resource,) = response.resources
        return {entry[0]: entry[1] for entry in resource[4]}
    finally:
        await admin.close()


async def topic_names(bootstrap: str, prefix: str, expected: set[str]) -> set[str]:
    """The topics under ``prefix`` (waiting a little for metadata to show every one of ``expected``)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for _ in range(20):
            found = {t.removeprefix(prefix) for t in await admin.list_topics() if t.startswith(prefix)}
            if found >= expected:
                break
            await asyncio.sleep(0.5)
        return found
    finally:
        await admin.close()


def test_topics_create_over_sasl_ssl_with_scram_sets_min_insync_replicas(
        kafka_bootstrap: str, kafka_secured: SecuredAccess, topic_prefix: str) -> None:
    env = {**kafka_secured.env("SCRAM-SHA-256"), "FORETHOUGHT_TOPIC_PREFIX": topic_prefix,
           "FORETHOUGHT_KAFKA_MIN_INSYNC_REPLICAS": "1"}
    done = cli("topics", "create", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    catalogue = {t.name for t in load_catalogue().topics}
    assert asyncio.run(topic_names(kafka_bootstrap, topic_prefix, catalogue)) == catalogue
    config = asyncio.run(topic_config(kafka_bootstrap, f"{topic_prefix}events.errors"))
    assert config["min.insync.replicas"] == "1"
    assert config["retention.ms"] == "604800000"  # the catalogue's own config is still there


async def test_worker_and_sender_work_through_sasl_ssl_with_scram(
        kafka_bootstrap: str, kafka_secured: SecuredAccess, topic_prefix: str, tmp_path: Path) -> None:
    await create_topics(kafka_secured.sasl_ssl_bootstrap, load_catalogue(), topic_prefix,
                        security=security(kafka_secured, "SCRAM-SHA-512"))
    checks = Deployment(kafka_bootstrap, topic_prefix, tmp_path, free_port())  # PLAINTEXT: only to look
    worker_env = checks.env(**kafka_secured.env("SCRAM-SHA-512"), FORETHOUGHT_KAFKA_MIN_INSYNC_REPLICAS="1")
    sender = SenderAppSettings(
        kafka_bootstrap=kafka_secured.sasl_ssl_bootstrap, topic_prefix=topic_prefix, app_id=checks.app_id,
        **security(kafka_secured, "SCRAM-SHA-256").model_dump(),
        sender=SenderSettings(web_port=free_port(), commit_interval_seconds=0))
    now = datetime.now(timezone.utc)
    burst = [events.page_view("sec-1", page="/home", occurred_at=now - timedelta(seconds=5))]
    burst += [events.error("sec-1", code="E500", severity="critical", occurred_at=now - timedelta(seconds=3 - i / 10))
              for i in range(8)]
    out = io.StringIO()
    with running_worker(worker_env, tmp_path / "worker.log", checks.url):
        async with running(sender, "console", console=Console(file=out, width=300, color_system=None)):
            async with ForethoughtProducer(kafka_secured.sasl_ssl_bootstrap, topic_prefix,
                                           **aiokafka_options(security(kafka_secured, "PLAIN"))) as producer:
                report = await producer.send_many(burst)
            assert report.sent == len(burst) and not report.failures
            triggers = await checks.consume("engagement.triggers", until=1, match=lambda r: r.key == b"sec-1")
            port = sender.sender.web_port
            await eventually(lambda: metric_is(port, "forethought_sender_sends_total", 1, channel="console",
                                               status="delivered"), 60, "the sender delivered the trigger")
        changelog = await topic_config(kafka_bootstrap, f"{checks.app_id}-customer_state-changelog")
    trigger = Trigger.model_validate_json(triggers[0].value)
    assert trigger.playbook == "error_burst"
    (outcome,) = await outcomes_of(checks, trigger)
    assert (outcome.status, outcome.customer_id) == ("delivered", "sec-1")
    assert "sec-1" in out.getvalue()
    assert changelog["min.insync.replicas"] == "1", "the worker's changelogs get the setting too"


def test_the_sync_sdk_producer_over_mutual_tls(kafka_bootstrap: str, kafka_secured: SecuredAccess,
                                               topic_prefix: str, tmp_path: Path) -> None:
    asyncio.run(create_topics(kafka_bootstrap, load_catalogue(), topic_prefix))
    mtls = KafkaSecurity(kafka_security_protocol="SSL", kafka_ssl_cafile=kafka_secured.ca_file,
                         kafka_ssl_certfile=kafka_secured.client_cert, kafka_ssl_keyfile=kafka_secured.client_key,
                         kafka_ssl_key_password=kafka_secured.client_key_password)
    with SyncProducer(kafka_secured.ssl_bootstrap, topic_prefix, **aiokafka_options(mtls)) as producer:
        delivery = producer.send(events.click("mtls-1", target="buy")).result(timeout=60)
    assert delivery.topic == f"{topic_prefix}events.clickstream"
    records = asyncio.run(Deployment(kafka_bootstrap, topic_prefix, tmp_path, 0).read_all("events.clickstream"))
    assert [r.key for r in records] == [b"mtls-1"]
    without_certificate = mtls.model_copy(update={"kafka_ssl_certfile": None, "kafka_ssl_keyfile": None,
                                                  "kafka_ssl_key_password": None})
    with pytest.raises(KafkaAccessError):  # the listener requires a client certificate
        asyncio.run(preflight(kafka_secured.ssl_bootstrap, without_certificate, timeout=10))


@pytest.mark.parametrize("verb", [["topics", "create"], ["worker"], ["senders", "run", "--channel", "console"]],
                         ids=["topics-create", "worker", "senders-run"])
def test_a_wrong_password_is_one_clear_line(kafka_secured: SecuredAccess, topic_prefix: str, tmp_path: Path,
                                            verb: list[str]) -> None:
    env = {**kafka_secured.env("SCRAM-SHA-512", password="not-the-password"), "FORETHOUGHT_TOPIC_PREFIX": topic_prefix,
           "FORETHOUGHT_WEB_PORT": str(free_port()), "FORETHOUGHT_SENDER__WEB_PORT": str(free_port()),
           "FORETHOUGHT_DATA_DIR": str(tmp_path / "worker")}
    done = cli(*verb, env=env)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0
    assert len(output.splitlines()) == 1, output
    assert "Traceback" not in output and "not-the-password" not in output
    assert "authentication failed" in output.lower()
    assert "'forethought' (SCRAM-SHA-512)" in output


def test_an_untrusted_broker_certificate_is_one_clear_line(kafka_secured: SecuredAccess, topic_prefix: str) -> None:
    env = {**kafka_secured.env(), "FORETHOUGHT_TOPIC_PREFIX": topic_prefix,
           "FORETHOUGHT_KAFKA_SSL_CAFILE": str(kafka_secured.client_cert)}  # not the CA that signed the broker
    done = cli("topics", "create", env=env)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0
    assert len(output.splitlines()) == 1, output
    assert "TLS handshake" in output and "certificate verify failed" in output


def test_the_sdk_takes_tls_and_sasl_from_the_environment_alone(
    kafka_bootstrap: str, kafka_secured: SecuredAccess, topic_prefix: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``ClientSettings`` reads the same FORETHOUGHT_KAFKA_* variables as the worker: an app in the
    worker's environment produces over SASL_SSL (SCRAM) with no argument at all."""
    asyncio.run(create_topics(kafka_bootstrap, load_catalogue(), topic_prefix))
    for name, value in {**kafka_secured.env("SCRAM-SHA-512"), "FORETHOUGHT_TOPIC_PREFIX": topic_prefix}.items():
        monkeypatch.setenv(name, value)
    with SyncProducer() as producer:
        delivery = producer.send(events.click("env-1", target="buy")).result(timeout=60)
    assert delivery.topic == f"{topic_prefix}events.clickstream"
    records = asyncio.run(Deployment(kafka_bootstrap, topic_prefix, tmp_path, 0).read_all("events.clickstream"))
    assert [r.key for r in records] == [b"env-1"]
    monkeypatch.setenv("FORETHOUGHT_KAFKA_SASL_PASSWORD", "wrong")
    with pytest.raises(KafkaConnectionError):  # the environment's wrong password is used, and refused
        with SyncProducer(start_timeout=60) as producer:
            producer.send(events.click("env-2")).result(timeout=60)
