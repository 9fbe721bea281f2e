"""The SDK's own settings, headers and timestamps, without a broker (constructing a producer connects nothing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from forethought.client import ClientSettings, ForethoughtProducer, InvalidHeader, events
from forethought.client.wire import Router
from forethought.ops.failures import BadSetting
from forethought.ops.settings import Settings
from forethought.ops.settings_sources import check_environment

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_bad_worker_only_variable_does_not_stop_a_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORETHOUGHT_WEB_PORT", "not-a-port")
    monkeypatch.setenv("FORETHOUGHT_LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError, match="web_port"):
        Settings()  # the worker refuses it: the variable really is bad
    monkeypatch.setenv("FORETHOUGHT_ENGINE__SILENCE_ZZ", "3")  # a name the worker does not even know
    producer = ForethoughtProducer()
    assert producer.router.topic_for("click") == "events.clickstream"


def test_the_topic_prefix_and_the_rest_come_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORETHOUGHT_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("FORETHOUGHT_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("FORETHOUGHT_KAFKA_COMPRESSION", "zstd")
    monkeypatch.setenv("FORETHOUGHT_CLIENT__ID", "billing-service")
    monkeypatch.setenv("FORETHOUGHT_MAX_EVENT_BYTES", "1024")
    settings = ClientSettings()
    assert (settings.topic_prefix, settings.client.id) == ("staging.", "billing-service")
    assert settings.max_event_bytes == 1024
    from_env = ForethoughtProducer()
    assert from_env.router.topic_for("error") == "staging.events.errors"
    assert from_env.router.max_event_bytes == 1024
    assert ForethoughtProducer(prefix="").router.topic_for("error") == "events.errors"  # an explicit "" wins
    assert ForethoughtProducer("here:9092", "p.").router.topic_for("usage") == "p.events.usage"
    # the worker, reading the same environment, accepts the client's section
    check_environment(Settings, {"FORETHOUGHT_CLIENT__ID": "x", "FORETHOUGHT_CLIENT__LINGER_MS": "10"})


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("FORETHOUGHT_TOPIC_PREFIX", "has space", "topic_prefix"),
    ("FORETHOUGHT_KAFKA_COMPRESSION", "brotli", "kafka_compression"),
    ("FORETHOUGHT_CLIENT__LINGER_MS", "-1", "linger_ms"),
    ("FORETHOUGHT_MAX_EVENT_BYTES", "12", "max_event_bytes"),
    ("FORETHOUGHT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "kafka_sasl_mechanism is required"),
])
def test_a_bad_client_setting_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                                 named: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=named):
        ForethoughtProducer()


def test_an_unknown_client_setting_is_refused_by_the_worker_s_check_as_well() -> None:
    with pytest.raises(BadSetting, match="FORETHOUGHT_CLIENTID"):
        check_environment(Settings, {"FORETHOUGHT_CLIENTID": "x"})


def test_records_carry_their_own_time_and_the_json_content_type() -> None:
    router = Router()
    event = events.usage("c1", metric="m", quantity=1, occurred_at="2026-05-06T07:08:09.123+02:00")
    wire = router.encode(event)
    assert wire.timestamp_ms == int(datetime(2026, 5, 6, 5, 8, 9, 123_000, tzinfo=UTC).timestamp() * 1000)
    assert wire.headers == (("content-type", b"application/json"),)
    profile = events.profile("c1", plan="pro", updated_at="2026-05-06T00:00:00Z")
    assert router.encode(profile).timestamp_ms == 1778025600000
    later = datetime(2026, 5, 7, tzinfo=timezone(timedelta(hours=1)))
    assert router.encode(event, timestamp=later).timestamp_ms == int(later.timestamp() * 1000)
    assert router.encode(event, timestamp=1_000).timestamp_ms == 1_000
    traced = router.encode(event, traceparent=TRACE, headers={"source": "billing", "raw": b"\x00\x01"})
    assert traced.headers == (("content-type", b"application/json"), ("traceparent", TRACE.encode()),
                              ("source", b"billing"), ("raw", b"\x00\x01"))


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"traceparent": "00-abc-def-01"}, InvalidHeader, "not a W3C trace context"),
    ({"traceparent": TRACE.upper()}, InvalidHeader, "not a W3C trace context"),
    ({"headers": {"traceparent": "nope"}}, InvalidHeader, "not a W3C trace context"),
    ({"headers": {"Content-Type": "text/plain"}}, InvalidHeader, "set by the SDK"),
    ({"headers": {"traceparent": TRACE}, "traceparent": TRACE}, InvalidHeader, "given twice"),
    ({"headers": {"n": 3}}, InvalidHeader, "expected str or bytes"),
    ({"headers": {f"h{i}": "v" for i in range(65)}}, InvalidHeader, "at most 64 headers"),
    ({"headers": {"big": "x" * 20_000}}, InvalidHeader, "over 16384"),
    ({"timestamp": datetime(2026, 1, 1)}, ValueError, "needs a time zone"),
    ({"timestamp": -1}, ValueError, ">= 0"),
    ({"timestamp": "2026-01-01"}, ValueError, "aware datetime or epoch milliseconds"),
])
def test_bad_headers_and_timestamps_are_refused_before_anything_is_sent(
    kwargs: dict[str, object], error: type[Exception], message: str,
) -> None:
    with pytest.raises(error, match=message):
        Router().encode(events.click("c1"), **kwargs)  # type: ignore[arg-type]
