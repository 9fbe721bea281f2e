"""Typed builders for every record a producer sends: the seven event kinds, profiles and outcomes.

Each builder returns the validated contract model (the same pydantic classes the worker decodes
with), filling ``event_id`` with a fresh uuid4 and ``occurred_at`` with the current UTC time when
they are not given. Bad input raises pydantic's ``ValidationError`` naming the field::

    from forethought.client import events

    click = events.click("cust-42", target="upgrade-button", session_id="s-1")
    boom = events.error("cust-42", code="PAYMENT_DECLINED", severity="critical")
    used = events.usage("cust-42", metric="api_calls", quantity=120, unit="call")
    who = events.profile("cust-42", plan="pro", timezone="Europe/Berlin", consent={"email": True})

>>> view = page_view("cust-42", page="/pricing", properties={"ab": "b"})
>>> view.type, view.customer_id, view.page, view.occurred_at.utcoffset().total_seconds()
('page_view', 'cust-42', '/pricing', 0.0)
>>> usage("cust-42", metric="api_calls", quantity=-1)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Usage
quantity
  Input should be greater than or equal to 0 ...
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, Literal, TypedDict, TypeVar

from typing_extensions import Unpack

from forethought.contracts.events import (
    Click,
    Envelope,
    ErrorEvent,
    FeatureUsed,
    PageView,
    PropertyValue,
    SessionEnd,
    SessionStart,
    Usage,
)
from forethought.contracts.records import Channel, Outcome, OutcomeStatus, Profile

__all__ = [
    "EnvelopeFields", "click", "error", "feature_used", "outcome", "page_view", "profile",
    "session_end", "session_start", "usage",
]

E = TypeVar("E", bound=Envelope)
When = datetime | str | None
Severity = Literal["info", "warning", "error", "critical"]


class EnvelopeFields(TypedDict, total=False):
    """Optional envelope fields every event builder accepts as keywords."""

    account_id: str | None
    session_id: str | None
    properties: dict[str, PropertyValue]


def now() -> datetime:
    """The current time, UTC, timezone-aware."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh random id (uuid4, 36 characters)."""
    return str(uuid.uuid4())


def _given(**fields: Any) -> dict[str, Any]:
    """Drop arguments left at ``None`` so that the model applies its own defaults."""
    return {name: value for name, value in fields.items() if value is not None}


def _event(model: type[E], customer_id: str, occurred_at: When, event_id: str | None,
           envelope: EnvelopeFields, **fields: Any) -> E:
    return model(
        event_id=new_id() if event_id is None else event_id, customer_id=customer_id,
        occurred_at=now() if occurred_at is None else occurred_at, **_given(**envelope, **fields),
    )


def page_view(customer_id: str, *, page: str | None = None, occurred_at: When = None,
              event_id: str | None = None, **envelope: Unpack[EnvelopeFields]) -> PageView:
    """A ``page_view`` event (topic ``events.clickstream``)."""
    return _event(PageView, customer_id, occurred_at, event_id, envelope, page=page)


def click(customer_id: str, *, target: str | None = None, occurred_at: When = None,
          event_id: str | None = None, **envelope: Unpack[EnvelopeFields]) -> Click:
    """A ``click`` event (topic ``events.clickstream``)."""
    return _event(Click, customer_id, occurred_at, event_id, envelope, target=target)


def session_start(customer_id: str, *, occurred_at: When = None, event_id: str | None = None,
                  **envelope: Unpack[EnvelopeFields]) -> SessionStart:
    """A ``session_start`` event (topic ``events.clickstream``)."""
    return _event(SessionStart, customer_id, occurred_at, event_id, envelope)


def session_end(customer_id: str, *, occurred_at: When = None, event_id: str | None = None,
                **envelope: Unpack[EnvelopeFields]) -> SessionEnd:
    """A ``session_end`` event (topic ``events.clickstream``)."""
    return _event(SessionEnd, customer_id, occurred_at, event_id, envelope)


def feature_used(customer_id: str, *, feature: str, occurred_at: When = None,
                 event_id: str | None = None, **envelope: Unpack[EnvelopeFields]) -> FeatureUsed:
    """A ``feature_used`` event (topic ``events.clickstream``)."""
    return _event(FeatureUsed, customer_id, occurred_at, event_id, envelope, feature=feature)


def error(customer_id: str, *, code: str, severity: Severity | None = None, message: str | None = None,
          occurred_at: When = None, event_id: str | None = None,
          **envelope: Unpack[EnvelopeFields]) -> ErrorEvent:
    """An ``error`` event (topic ``events.errors``); severity defaults to ``"error"``."""
    return _event(ErrorEvent, customer_id, occurred_at, event_id, envelope,
                  code=code, severity=severity, message=message)


def usage(customer_id: str, *, metric: str, quantity: float, unit: str | None = None,
          occurred_at: When = None, event_id: str | None = None,
          **envelope: Unpack[EnvelopeFields]) -> Usage:
    """A ``usage`` event (topic ``events.usage``): ``quantity`` (>= 0) of ``metric``."""
    return _event(Usage, customer_id, occurred_at, event_id, envelope,
                  metric=metric, quantity=quantity, unit=unit)


def profile(customer_id: str, *, plan: str | None = None, timezone: str | None = None,
            locale: str | None = None, consent: dict[Channel, bool] | None = None,
            signup_date: date | str | None = None, renewal_date: date | str | None = None,
            attributes: dict[str, PropertyValue] | None = None, updated_at: When = None) -> Profile:
    """A customer's latest profile (compacted topic ``customers.profile``); time zone is IANA."""
    return Profile(customer_id=customer_id, updated_at=now() if updated_at is None else updated_at,
                   **_given(plan=plan, timezone=timezone, locale=locale, consent=consent,
                            signup_date=signup_date, renewal_date=renewal_date, attributes=attributes))


def outcome(customer_id: str, *, trigger_id: str, channel: Channel, status: OutcomeStatus,
            detail: str | None = None, occurred_at: When = None, outcome_id: str | None = None) -> Outcome:
    """What a channel sender did with a trigger (topic ``engagement.outcomes``)."""
    return Outcome(outcome_id=new_id() if outcome_id is None else outcome_id, trigger_id=trigger_id,
                   customer_id=customer_id, channel=channel, status=status,
                   occurred_at=now() if occurred_at is None else occurred_at, **_given(detail=detail))
