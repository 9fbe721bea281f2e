"""Records that are not behaviour events: profiles, outcomes, triggers and dead letters.

>>> Profile(customer_id="c1", timezone="Asia/Tokyo", updated_at="2026-11-22T00:00:00Z").timezone
'Asia/Tokyo'
>>> Profile(customer_id="c1", timezone="Mars/Olympus", updated_at="2026-11-22T00:00:00Z")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Profile
timezone
  Value error, unknown IANA time zone 'Mars/Olympus' ...
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from forethought.contracts.events import Id, Name, PropertyValue

Channel = Literal["email", "in_app", "webhook", "cs_outreach", "sms", "push"]
OutcomeStatus = Literal[
    "delivered", "opened", "clicked", "converted", "unsubscribed", "bounced", "failed", "expired"
]
DeadLetterReason = Literal[
    "not_json", "schema", "oversized", "missing_customer", "wrong_topic", "future_event",
    "unknown_type",
]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Profile(_Record):
    """The latest known profile of a customer (compacted topic, keyed by customer_id)."""

    type: Literal["profile"] = "profile"
    customer_id: Id
    updated_at: AwareDatetime
    plan: Name | None = None
    timezone: str = "UTC"
    locale: Name | None = None
    consent: dict[Channel, bool] = Field(default_factory=dict)
    signup_date: date | None = None
    renewal_date: date | None = None
    attributes: dict[Name, PropertyValue] = Field(default_factory=dict, max_length=64)

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


class Outcome(_Record):
    """What a channel sender did with a trigger; closes the loop."""

    type: Literal["outcome"] = "outcome"
    outcome_id: Id
    trigger_id: Id
    customer_id: Id
    channel: Channel
    status: OutcomeStatus
    occurred_at: AwareDatetime
    detail: Annotated[str, Field(max_length=2048)] = ""


class TolerantRecord(BaseModel):
    """Records we publish: readers must tolerate fields added later within a schema version."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Reason(TolerantRecord):
    """One piece of evidence behind a trigger: what was observed against which baseline."""

    signal: Name = Field(description="What was measured, e.g. 'silence_seconds'.")
    observed: float
    baseline: float = Field(description="The customer's own usual value for this signal.")
    unit: Name = "count"
    text: str = Field(description="One readable sentence a sender can show or paraphrase.")


class Trigger(TolerantRecord):
    """An engagement trigger for channel senders. Senders deduplicate by ``trigger_id``.

    Senders should ignore fields they do not know: new optional fields may be added
    within ``schema_version`` 1.
    """

    type: Literal["trigger"] = "trigger"
    schema_version: Literal[1] = 1
    trigger_id: Id = Field(description="Deterministic: customer, playbook and episode.")
    customer_id: Id
    account_id: Id | None = None
    playbook: Name
    detector: Name
    episode: Name = Field(description="Which silence or burst this is; fires at most once.")
    channel: Channel
    priority: int = Field(ge=0, le=100)
    fired_at: AwareDatetime = Field(description="Event time at which the condition held.")
    expires_at: AwareDatetime
    scores: dict[Name, float]
    reasons: list[Reason] = Field(min_length=1)
    context: dict[Name, PropertyValue] = Field(default_factory=dict)


class DeadLetter(_Record):
    """A record that could not be used, with everything needed to inspect or replay it."""

    type: Literal["deadletter"] = "deadletter"
    reason: DeadLetterReason
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    key_b64: str | None
    value_b64: str = Field(description="The original bytes, base64.")
    received_at: AwareDatetime


ControlRecord = Annotated[Union[Profile, Outcome], Field(discriminator="type")]
CONTROL_ADAPTER: TypeAdapter[ControlRecord] = TypeAdapter(ControlRecord)
