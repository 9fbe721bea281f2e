"""Expiry, outcomes, lenient trigger decoding, routing settings, the ledger's memory bound, the dead
letters' size bound, doctests."""

from __future__ import annotations

import base64
import doctest
import hashlib
import importlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from forethought.contracts.records import Outcome, Trigger
from forethought.contracts.schemas import EXAMPLES
from forethought.senders.channels import classify_http, expiry
from forethought.senders.ledger import LedgerView
from forethought.senders.records import (
    DeliveryResult, SenderDeadLetter, decode_trigger, outcome_for, outcome_id, sender_dead_letter,
)
from forethought.senders.settings import SenderAppSettings, SenderSettings

EXPIRES = datetime(2026, 11, 23, 8, 30, tzinfo=timezone.utc)  # the example's expires_at


def trigger(**changes: Any) -> Trigger:
    return Trigger.model_validate({**EXAMPLES["trigger"], **changes})


def test_a_trigger_is_live_until_its_expiry_and_expired_from_then_on() -> None:
    assert expiry(trigger(), EXPIRES - timedelta(seconds=1)) is None
    at_expiry = expiry(trigger(), EXPIRES)
    later = expiry(trigger(), EXPIRES + timedelta(hours=2))
    assert at_expiry is not None and later is not None
    assert (later.status, later.attempts) == ("expired", 0)
    assert "7200s" in later.detail and "not sent" in later.detail


def test_outcomes_follow_the_contract_with_deterministic_ids() -> None:
    t, now = trigger(), datetime(2026, 11, 22, 12, tzinfo=timezone.utc)
    first = outcome_for(t, DeliveryResult("delivered", "HTTP 200", 2), now)
    again = outcome_for(t, DeliveryResult("delivered", "HTTP 200", 1), now + timedelta(minutes=5))
    assert Outcome.model_validate_json(first.model_dump_json()) == first
    assert first.outcome_id == again.outcome_id == outcome_id(t.trigger_id, "delivered")
    assert outcome_for(t, DeliveryResult("failed", "x"), now).outcome_id != first.outcome_id
    assert (first.customer_id, first.channel, first.status) == ("cust-42", "email", "delivered")
    assert len(outcome_for(t, DeliveryResult("failed", "x" * 5000), now).detail) == 2048


def test_only_failures_are_dead_lettered() -> None:
    assert [DeliveryResult(s, "").dead_letter for s in ("delivered", "failed", "bounced", "expired")] == \
        [False, True, False, False]


def test_unknown_fields_of_a_newer_trigger_are_ignored_not_rejected() -> None:
    newer = {**EXAMPLES["trigger"], "cohort": "b", "reasons": [{**EXAMPLES["trigger"]["reasons"][0], "weight": 1}]}
    assert decode_trigger(json.dumps(newer).encode()) == trigger()
    assert Trigger.model_validate(newer) == trigger()  # the contract itself is a tolerant reader


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"type": "trigger"}', b""])
def test_garbage_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_trigger(raw)


@pytest.mark.parametrize(("status", "kind"), [(200, "ok"), (204, "ok"), (301, "permanent"), (400, "permanent"),
                                              (401, "permanent"), (404, "permanent"), (408, "transient"),
                                              (429, "transient"), (500, "transient"), (503, "transient")])
def test_http_statuses_are_classified(status: int, kind: str) -> None:
    assert classify_http(status) == kind


def test_routes_join_senders_and_refuse_overlaps() -> None:
    config = SenderSettings(console_channels=["in_app", "email"])
    assert config.serves(["console"]) == {"in_app": "console", "email": "console"}
    with pytest.raises(ValueError, match="'email' is served by both"):
        config.serves(["email", "console"])


def test_settings_fail_fast_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="backoff_max_seconds"):
        SenderSettings(backoff_base_seconds=10, backoff_max_seconds=1)
    with pytest.raises(ValidationError, match="EMAIL_TO was removed"):
        SenderSettings(email_to="{customer_id}@x.example")
    with pytest.raises(ValidationError, match="webhook_url"):
        SenderSettings(webhook_url="ftp://x")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORETHOUGHT_SENDER__WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("FORETHOUGHT_SENDER__WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("FORETHOUGHT_SENDER__CONSOLE_CHANNELS", '["push"]')
    monkeypatch.setenv("FORETHOUGHT_APP_ID", "acme")
    settings = SenderAppSettings()
    assert settings.sender.webhook_url == "http://127.0.0.1:9/hook"
    assert settings.sender.webhook_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.sender.console_channels == ["push"]
    assert settings.consumer_group(["webhook", "console"]) == "acme-senders-console-webhook"
    assert settings.sender.missing_for(["webhook"]) == []


def test_the_ledger_view_forgets_by_age() -> None:
    view, now = LedgerView(timedelta(days=7)), 1_800_000_000.0
    for age_days in range(10):
        view.add(f"email:t{age_days}".encode(), "delivered", now - age_days * 86_400 - 1, now=now)
    assert len(view) == 7
    assert sorted(view.prune(now + 3 * 86_400)) == [b"email:t4", b"email:t5", b"email:t6"] and len(view) == 4
    view.discard(b"email:t0")
    assert b"email:t0" not in view


SENDER_MODULES = ["retry", "signing", "templates", "records", "channels", "ledger", "metrics", "settings"]


@pytest.mark.parametrize("name", SENDER_MODULES)
def test_docstring_examples_pass(name: str) -> None:
    module = importlib.import_module(f"forethought.senders.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --- the size bound of sender dead letters (the worker's rule, the worker's setting) -------------

AT = datetime(2026, 11, 22, 12, tzinfo=timezone.utc)
WHERE: dict[str, Any] = {"sender": "webhook", "status": "failed", "source_topic": "engagement.triggers",
                         "source_partition": 1, "source_offset": 5, "failed_at": AT}


def test_a_huge_invalid_trigger_record_becomes_a_bounded_prefix_with_its_size_and_sha256() -> None:
    original = b'{"type": "trigger", "junk": "' + b"\xe2\x82\xac" * 300_000 + b'"}'  # ~900 KB
    letter = sender_dead_letter(error="not a valid trigger: " + "€" * 5000, original=original,
                                max_bytes=SenderAppSettings().deadletter_max_bytes, attempts=0, **WHERE)
    published = letter.model_dump_json().encode()
    assert len(published) <= 256 * 1024 and letter.truncated
    kept = base64.b64decode(letter.value_b64 or "")
    assert original.startswith(kept) and len(kept) > 150_000
    assert (letter.original_value_bytes, letter.original_value_sha256) == (len(original), hashlib.sha256(original).hexdigest())
    assert letter.error.startswith("not a valid trigger: €") and letter.error.endswith(f"value {len(original)} bytes")
    assert SenderDeadLetter.model_validate_json(published) == letter


def test_a_failed_trigger_too_big_to_carry_is_replaced_by_a_prefix_of_its_record() -> None:
    big = trigger(context={f"k{i}": "v" * 1000 for i in range(100)})  # valid, ~100 KB
    original = big.model_dump_json().encode()
    letter = sender_dead_letter(error="HTTP 500 " + "\x00" * 4096, original=original, max_bytes=16 * 1024,
                                attempts=5, trigger=big, **WHERE)
    assert len(letter.model_dump_json().encode()) <= 16 * 1024
    assert letter.trigger is None and letter.truncated and original.startswith(base64.b64decode(letter.value_b64 or ""))
    small = sender_dead_letter(error="HTTP 500", original=original, max_bytes=256 * 1024, attempts=5, trigger=big, **WHERE)
    assert small.trigger == big and small.value_b64 is None and not small.truncated


def test_senders_read_the_dead_letter_bound_from_the_workers_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORETHOUGHT_DEADLETTER_MAX_BYTES", "20000")
    assert SenderAppSettings().deadletter_max_bytes == 20_000
    monkeypatch.setenv("FORETHOUGHT_DEADLETTER_MAX_BYTES", "2000000")
    with pytest.raises(ValidationError, match="deadletter_max_bytes"):
        SenderAppSettings()
