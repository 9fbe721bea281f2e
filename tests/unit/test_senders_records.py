"""Expiry, outcomes, lenient trigger decoding, routing settings, the ledger's memory bound, doctests."""

from __future__ import annotations

import doctest
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
from forethought.senders.records import DeliveryResult, decode_trigger, outcome_for, outcome_id
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
