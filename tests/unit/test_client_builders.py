"""The producer SDK without Kafka: builders, wire encoding, routing, size limit, ``send --dry-run``."""

from __future__ import annotations

import doctest
import gzip
import importlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from forethought.cli import app
from forethought.client import events
from forethought.client.wire import InvalidRecord, RecordTooLarge, Router, decode_record, to_json
from forethought.contracts.decode import Rejection, decode_event
from forethought.contracts.records import CONTROL_ADAPTER
from forethought.ops.settings import Settings
from forethought.ops.topics import load_catalogue

BUILDERS: dict[str, Callable[[], BaseModel]] = {
    "page_view": lambda: events.page_view("cust-42", page="/pricing"),
    "click": lambda: events.click("cust-42", target="buy"),
    "session_start": lambda: events.session_start("cust-42", session_id="s-1"),
    "session_end": lambda: events.session_end("cust-42", session_id="s-1"),
    "feature_used": lambda: events.feature_used("cust-42", feature="export"),
    "error": lambda: events.error("cust-42", code="E503", severity="critical", message="boom"),
    "usage": lambda: events.usage("cust-42", metric="api_calls", quantity=12.5, unit="call"),
}
RECORDS: dict[str, Callable[[], BaseModel]] = {
    "profile": lambda: events.profile("cust-42", plan="pro", timezone="Asia/Tokyo", consent={"email": True},
                                      signup_date="2026-01-31", attributes={"seats": 5}),
    "outcome": lambda: events.outcome("cust-42", trigger_id="t-1", channel="email", status="opened"),
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_each_event_builder_round_trips_through_the_worker_decoder(kind: str) -> None:
    event = BUILDERS[kind]()
    assert event.type == kind  # type: ignore[attr-defined]
    assert decode_event(to_json(event)) == event


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_what_the_producer_puts_on_a_topic_is_accepted_there(kind: str) -> None:
    event = BUILDERS[kind]()
    wire = Router(prefix="p.").encode(event)
    catalogue = load_catalogue().by_name
    allowed = frozenset(catalogue[wire.topic.removeprefix("p.")].kinds)
    assert wire.key == b"cust-42"
    assert decode_event(wire.value, allowed) == event
    assert wire.topic != "p.forethought.rekeyed"  # the internal topic is never a producer's target


@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_profile_and_outcome_builders_round_trip(kind: str) -> None:
    record = RECORDS[kind]()
    wire = Router().encode(record)
    assert wire.topic == {"profile": "customers.profile", "outcome": "engagement.outcomes"}[kind]
    assert CONTROL_ADAPTER.validate_json(wire.value) == record
    assert decode_record(wire.value) == record


def test_every_envelope_field_survives_the_round_trip() -> None:
    event = events.click("cust-42", target="t", account_id="acct-1", session_id="s-9",
                         properties={"plan": "pro", "n": 3, "x": 1.5, "ok": True, "gone": None},
                         occurred_at="2026-11-22T10:00:00+09:00", event_id="evt-7")
    decoded = decode_event(to_json(event))
    assert decoded == event
    assert not isinstance(decoded, Rejection) and decoded.properties["gone"] is None
    assert decoded.occurred_at.utcoffset() == timedelta(hours=9)


def test_defaults_a_fresh_uuid_and_the_current_utc_time() -> None:
    before = datetime.now(timezone.utc)
    first, second = events.session_start("cust-42"), events.session_start("cust-42")
    after = datetime.now(timezone.utc)
    assert first.event_id != second.event_id
    assert uuid.UUID(first.event_id).version == 4
    assert first.occurred_at.utcoffset() == timedelta(0)
    assert before <= first.occurred_at <= after
    assert events.outcome("c", trigger_id="t", channel="email", status="opened").outcome_id != \
        events.outcome("c", trigger_id="t", channel="email", status="opened").outcome_id
    assert events.profile("c").updated_at.tzinfo is not None


def test_defaults_are_left_out_of_the_json_but_the_type_is_kept() -> None:
    body = orjson.loads(to_json(events.session_end("cust-42", event_id="e", occurred_at="2026-11-22T10:00:00Z")))
    assert body == {"event_id": "e", "customer_id": "cust-42", "occurred_at": "2026-11-22T10:00:00Z",
                    "type": "session_end"}


@pytest.mark.parametrize(("build", "field"), [
    (lambda: events.page_view(""), "customer_id"),
    (lambda: events.click("c", occurred_at=datetime(2026, 1, 1)), "occurred_at"),  # naive: no offset
    (lambda: events.click("c", occurred_at="1969-12-31T23:00:00Z"), "occurred_at"),  # before 1970
    (lambda: events.usage("c", metric="m", quantity=-1), "quantity"),
    (lambda: events.usage("c", metric="m", quantity=float("nan")), "quantity"),
    (lambda: events.error("c", code="E", severity="fatal"), "severity"),  # type: ignore[arg-type]
    (lambda: events.feature_used("c", feature=""), "feature"),
    (lambda: events.page_view("c", properties={f"k{i}": i for i in range(33)}), "properties"),
    (lambda: events.page_view("c", colour="red"), "colour"),  # type: ignore[call-arg]
    (lambda: events.profile("c", timezone="Mars/Olympus"), "timezone"),
    (lambda: events.outcome("c", trigger_id="t", channel="dove", status="opened"), "channel"),  # type: ignore[arg-type]
    (lambda: events.outcome("c", trigger_id="t", channel="email", status="maybe"), "status"),  # type: ignore[arg-type]
])
def test_bad_input_raises_a_validation_error_naming_the_field(build: Callable[[], Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build()
    assert [field] == [str(err["loc"][0]) for err in caught.value.errors()][:1]
    assert field in str(caught.value)


def test_a_record_over_the_worker_limit_is_refused_locally() -> None:
    limit = Settings().max_event_bytes
    # every field within its own bounds, but 32 values of 1024 four-byte characters is ~128 KiB of JSON
    big = events.page_view("cust-42", properties={f"k{i}": "\N{ROCKET}" * 1024 for i in range(32)})
    assert len(to_json(big)) > limit
    with pytest.raises(RecordTooLarge, match=rf"{big.event_id} is \d+ bytes, over the worker's limit of {limit}"):
        Router().encode(big)
    fits = events.page_view("cust-42", properties={f"k{i}": "x" * 1000 for i in range(16)})
    assert decode_event(Router().encode(fits).value, max_bytes=limit) == fits


def test_the_producer_reads_the_same_size_limit_as_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORETHOUGHT_MAX_EVENT_BYTES", "300")
    assert Settings().max_event_bytes == Router().max_event_bytes == 300
    with pytest.raises(RecordTooLarge, match="over the worker's limit of 300"):
        Router().encode(events.page_view("cust-42", properties={"x": "y" * 400}))
    monkeypatch.setenv("FORETHOUGHT_MAX_EVENT_BYTES", "10")  # below the worker's floor: refused, field named
    with pytest.raises(ValidationError, match="max_event_bytes"):
        Router()


def test_a_bad_worker_only_setting_does_not_stop_a_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORETHOUGHT_WEB_PORT", "0")  # the worker refuses to start with it; a producer needs no port
    with pytest.raises(ValidationError):
        Settings()
    assert Router().encode(events.click("cust-42", target="buy")).topic == "events.clickstream"


@pytest.mark.parametrize(("line", "reason"), [
    (b"{nope", "not_json"),
    (b'{"type": "trigger", "customer_id": "c"}', "unknown_type"),
    (b'{"type": "click", "customer_id": "c"}', "schema"),
    (b"[1, 2]", "schema"),
])
def test_decode_record_says_why_a_line_is_not_a_record(line: bytes, reason: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        decode_record(line)
    assert caught.value.reason == reason


@pytest.mark.parametrize("name", ["events", "wire", "producer", "sync"])
def test_module_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(f"forethought.client.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_send_dry_run_routes_valid_lines_and_names_the_invalid_ones(tmp_path: Path) -> None:
    lines = [to_json(BUILDERS[k]()) for k in sorted(BUILDERS)] + [b"not json", b"",
                                                                   b'{"type":"usage","customer_id":"c"}']
    path = tmp_path / "mixed.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    result = CliRunner().invoke(app, ["send", str(path), "--dry-run", "--prefix", "dry."])
    assert result.exit_code == 1, result.output
    assert "line 8 (not_json)" in result.output and "line 10 (schema)" in result.output
    assert "would send 7 records" in result.output
    assert "dry.events.clickstream" in result.output and "dry.events.usage" in result.output
