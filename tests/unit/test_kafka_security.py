"""Kafka TLS/SASL settings: validated together at start-up, secrets never shown, turned into the
options aiokafka and Faust take, and the replication settings into topic configs."""

from __future__ import annotations

import doctest
import importlib
import logging
import os
import shutil
import ssl
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from forethought.devkafka.secure import make_pki
from forethought.ops.kafka_security import (
    KafkaAccessError,
    KafkaSecurity,
    KafkaUnreachable,
    aiokafka_options,
    faust_options,
    preflight,
    ssl_context,
    topic_options,
)
from forethought.ops.process import free_port
from forethought.ops.settings import Settings, validation_message
from forethought.ops.topics import new_topic
from forethought.senders.settings import SenderAppSettings

SASL_ENV = {
    "FORETHOUGHT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "FORETHOUGHT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "FORETHOUGHT_KAFKA_SASL_USERNAME": "svc-forethought",
    "FORETHOUGHT_KAFKA_SASL_PASSWORD": "s3cret-Pa55",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults, not whatever FORETHOUGHT_* the shell running the tests exports."""
    for name in [n for n in os.environ if n.upper().startswith("FORETHOUGHT_")]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real test PKI (CA, client certificate, encrypted client key) and the key's password."""
    if shutil.which("openssl") is None:  # `make tools` installs it; under CI a missing one is a broken set-up
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("openssl not found (CI=true): `make tools` should have installed it", pytrace=False)
        pytest.skip("openssl not found")
    tls = tmp_path_factory.mktemp("tls")
    return tls, make_pki(tls)


@pytest.mark.parametrize("module", ["forethought.ops.kafka_security", "forethought.devkafka.secure",
                                    "forethought.ops.settings", "forethought.ops.topics"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted and not result.failed


def test_settings_read_security_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    for settings in (Settings(), SenderAppSettings()):  # one spelling for worker and senders
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
        assert settings.kafka_sasl_password is not None
        assert settings.kafka_sasl_password.get_secret_value() == "s3cret-Pa55"
        assert settings.kafka_ssl_check_hostname is True


def test_the_password_is_never_shown(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FORETHOUGHT_KAFKA_SSL_KEY_PASSWORD", "key-Pa55")
    monkeypatch.setenv("FORETHOUGHT_KAFKA_SSL_CERTFILE", __file__)
    settings = SenderAppSettings()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("forethought.test").info("settings %s %r", settings, settings)
    shown = [repr(settings), str(settings), settings.model_dump_json(), caplog.text,
             repr(faust_options(settings.model_copy(update={"kafka_ssl_certfile": None,
                                                            "kafka_ssl_key_password": None}))["broker_credentials"])]
    for text in shown:
        assert "s3cret-Pa55" not in text and "key-Pa55" not in text
    assert "**********" in repr(settings)


@pytest.mark.parametrize(("env", "named"), [
    ({"FORETHOUGHT_KAFKA_SASL_PASSWORD": None}, "kafka_sasl_password"),
    ({"FORETHOUGHT_KAFKA_SASL_PASSWORD": ""}, "kafka_sasl_password"),
    ({"FORETHOUGHT_KAFKA_SASL_USERNAME": None}, "kafka_sasl_username"),
    ({"FORETHOUGHT_KAFKA_SASL_MECHANISM": None}, "kafka_sasl_mechanism"),
    ({"FORETHOUGHT_KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
    ({"FORETHOUGHT_KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"FORETHOUGHT_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "kafka_sasl_mechanism is set but"),
    ({"FORETHOUGHT_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE"),
    ({"FORETHOUGHT_KAFKA_SSL_KEYFILE": __file__}, "kafka_ssl_keyfile needs kafka_ssl_certfile"),
    ({"FORETHOUGHT_KAFKA_SSL_KEY_PASSWORD": "x"}, "kafka_ssl_key_password needs kafka_ssl_certfile"),
    ({"FORETHOUGHT_KAFKA_REPLICATION_FACTOR": "0"}, "kafka_replication_factor"),
    ({"FORETHOUGHT_KAFKA_REPLICATION_FACTOR": "2", "FORETHOUGHT_KAFKA_MIN_INSYNC_REPLICAS": "3"},
     "cannot exceed kafka_replication_factor"),
])
def test_inconsistent_settings_fail_at_start_up_naming_the_field(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None], named: str) -> None:
    for name, value in {**SASL_ENV, **env}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = validation_message(caught.value)
    assert named in message
    assert "s3cret-Pa55" not in message


def test_plaintext_adds_nothing_to_any_client() -> None:
    settings = Settings()
    assert aiokafka_options(settings) == {}
    assert faust_options(settings) == {}
    assert topic_options(settings) == {}
    assert settings.kafka_replication_factor == -1  # the broker's default


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_options_for_aiokafka_and_faust_agree(pki: tuple[Path, str], mechanism: str) -> None:
    tls, _ = pki
    settings = KafkaSecurity(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=tls / "ca.pem",
                             kafka_sasl_mechanism=mechanism, kafka_sasl_username="svc", kafka_sasl_password="pw")
    ours = aiokafka_options(settings)
    theirs = credentials_to_aiokafka_auth(faust_options(settings)["broker_credentials"])  # what faust hands aiokafka
    for options in (ours, theirs):
        assert options["security_protocol"] == "SASL_SSL"
        assert options["sasl_mechanism"] == mechanism
        assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "pw")
        assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
        assert options["ssl_context"].check_hostname is True


def test_sasl_plaintext_and_ssl_map_to_the_right_faust_credentials(pki: tuple[Path, str]) -> None:
    tls, _ = pki
    sasl = KafkaSecurity(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
                         kafka_sasl_username="svc", kafka_sasl_password="pw")
    auth = credentials_to_aiokafka_auth(faust_options(sasl)["broker_credentials"])
    assert (auth["security_protocol"], auth["ssl_context"]) == ("SASL_PLAINTEXT", None)
    assert "ssl_context" not in aiokafka_options(sasl)
    tls_only = KafkaSecurity(kafka_security_protocol="SSL", kafka_ssl_cafile=tls / "ca.pem")
    credentials = faust_options(tls_only)["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"


def test_client_certificate_with_an_encrypted_key(pki: tuple[Path, str]) -> None:
    tls, password = pki
    base = {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": tls / "ca.pem",
            "kafka_ssl_certfile": tls / "client.pem", "kafka_ssl_keyfile": tls / "client.key"}
    context = ssl_context(KafkaSecurity(**base, kafka_ssl_key_password=password, kafka_ssl_check_hostname=False))
    assert context is not None and context.check_hostname is False and context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(KafkaAccessError, match="Kafka TLS files unusable") as caught:
        aiokafka_options(KafkaSecurity(**base, kafka_ssl_key_password="wrong-password"))
    assert "\n" not in str(caught.value)


def test_replication_settings_reach_new_topics() -> None:
    settings = KafkaSecurity(kafka_replication_factor=3, kafka_min_insync_replicas=2)
    assert topic_options(settings) == {"min.insync.replicas": "2"}
    topic = new_topic("t.events.errors", 12, settings.kafka_replication_factor, topic_options(settings))
    assert (topic.replication_factor, topic.topic_configs) == (3, {"min.insync.replicas": "2"})
    assert new_topic("t", 12, -1, {}).replication_factor == -1


def test_the_worker_app_carries_credentials_replication_and_min_isr(pki: tuple[Path, str], tmp_path: Path) -> None:
    from forethought.stream.worker import build_worker

    tls, _ = pki
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=tls / "ca.pem",
                        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="svc", kafka_sasl_password="pw",
                        kafka_replication_factor=3, kafka_min_insync_replicas=2, data_dir=tmp_path)
    worker = build_worker(settings)
    conf = worker.app.conf
    assert isinstance(conf.broker_credentials, faust.SASLCredentials)
    assert conf.broker_credentials.mechanism.value == "SCRAM-SHA-512"
    assert conf.topic_replication_factor == 3
    for table in (worker.processor.table, worker.processor.profiles, worker.processor.checkpoints):
        assert table.changelog_topic.config == {"min.insync.replicas": "2"}
        assert table.changelog_topic.replicas == 3


def test_by_default_the_worker_leaves_changelog_replication_to_the_broker(tmp_path: Path) -> None:
    from forethought.stream.worker import build_worker

    worker = build_worker(Settings(data_dir=tmp_path))
    assert worker.app.conf.broker_credentials is None
    for table in (worker.processor.table, worker.processor.profiles, worker.processor.checkpoints):
        assert table.changelog_topic.replicas == -1  # sent as is in Faust's CreateTopics request
        assert "min.insync.replicas" not in (table.changelog_topic.config or {})


async def test_preflight_names_an_unreachable_broker_in_one_line() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(KafkaUnreachable, match=f"cannot reach Kafka \\(PLAINTEXT\\): 127.0.0.1:{port}") as caught:
        await preflight(f"127.0.0.1:{port}", KafkaSecurity(), timeout=5)
    assert "\n" not in str(caught.value)
