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

import re
from datetime import date
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    field_validator,
)

from forethought.contracts.events import STRICT_INPUT, TIME_RANGE, BoundedTime, Id, Name, OutputId, PropertyValue
from forethought.contracts.timetext import ANY_DATE, NO_CONTROL

Channel = Literal["email", "in_app", "webhook", "cs_outreach", "sms", "push"]
OutcomeStatus = Literal[
    "delivered", "opened", "clicked", "converted", "unsubscribed", "bounced", "failed", "expired"
]
DeadLetterReason = Literal[
    "not_json", "schema", "oversized", "missing_customer", "wrong_topic", "future_event",
    "unknown_type", "unknown_field", "undecodable_batch", "processing_error",
]
_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def _quiet_window(text: str) -> str:
    if not _QUIET.fullmatch(text):
        raise ValueError(f"expected local quiet hours as HH:MM-HH:MM (e.g. 22:00-08:00), got {text!r}")
    return text


QuietWindow = Annotated[str, AfterValidator(_quiet_window),
                        Field(json_schema_extra={"pattern": _QUIET.pattern, **NO_CONTROL})]
"""Local quiet hours ``HH:MM-HH:MM``; a start after the end wraps midnight (``22:00-08:00``)."""


EARLIEST_DATE, LATEST_DATE = date(1970, 1, 1), date(2099, 12, 31)
_DATE = re.compile(f"^{ANY_DATE}$")


def _date_text(value: object) -> object:
    """A date built in Python, or a ``YYYY-MM-DD`` string; never a number (no epoch coercion)."""
    if isinstance(value, date) or (isinstance(value, str) and _DATE.fullmatch(value)):
        return value
    raise ValueError(f"must be a date as YYYY-MM-DD between {EARLIEST_DATE} and {LATEST_DATE}, got {value!r:.64}")


def _date_in_range(value: date) -> date:
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValueError(f"must be between {EARLIEST_DATE} and {LATEST_DATE}, got {value}")
    return value


BoundedDate = Annotated[date, Strict(False), BeforeValidator(_date_text), AfterValidator(_date_in_range),
                        Field(json_schema_extra={"pattern": f"^{ANY_DATE}$", **NO_CONTROL})]
"""A calendar date the engine can compute with: 1970-01-01 to 2099-12-31."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*$"


class Profile(BaseModel):
    """The latest known profile of a customer (compacted topic, keyed by customer_id)."""

    model_config = STRICT_INPUT

    type: Literal["profile"] = "profile"
    customer_id: Id
    updated_at: BoundedTime = Field(description=f"When the profile changed, RFC 3339 with offset, {TIME_RANGE}.")
    plan: Name | None = None
    timezone: str = Field("UTC", pattern=TIMEZONE_PATTERN, max_length=64, json_schema_extra=NO_CONTROL, description=(
        "An IANA time zone name. Beyond the pattern, the worker checks the name exists in its time zone"
        " database (a check no JSON Schema can make): an unknown zone is dead-lettered as schema."))
    locale: Name | None = None
    email: str | None = Field(
        None, max_length=320,
        description="The customer's e-mail address: the only recipient the email sender ever uses. Checked "
                    "strictly by the sender at send time (one plain address), not here: a profile with a "
                    "bad address must still carry its consent and opt-outs.")
    consent: dict[Channel, bool] = Field(
        default_factory=dict, description="Per channel: true opted in, false opted out; absent: the policy default.")
    opted_out: bool = Field(False, description="Global opt-out: no trigger on any channel.")
    quiet_hours: QuietWindow | None = Field(None, description="Local quiet hours, e.g. 22:00-08:00.")
    signup_date: BoundedDate | None = Field(None, description="1970-01-01 to 2099-12-31.")
    renewal_date: BoundedDate | None = Field(None, description="1970-01-01 to 2099-12-31.")
    attributes: dict[Name, PropertyValue] = Field(default_factory=dict, max_length=64)

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


class Outcome(BaseModel):
    """What a channel sender did with a trigger; closes the loop."""

    model_config = STRICT_INPUT

    type: Literal["outcome"] = "outcome"
    outcome_id: Id
    trigger_id: Id
    customer_id: Id
    channel: Channel
    status: OutcomeStatus
    occurred_at: BoundedTime = Field(description=f"When it happened, RFC 3339 with offset, {TIME_RANGE}.")
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


def _unset(value: object) -> bool:
    """Fields added for variants are left out of a trigger without one: it is written as before them."""
    return value is None


class Choice(TolerantRecord):
    """A bandit's choice of a playbook's variant, and the probability it gave each variant."""

    policy: Name = Field(description="thompson, ucb, or uniform (no partition models).")
    variant: Name
    probabilities: dict[Name, float] = Field(description="Per variant: the probability it had of being chosen.")


class Why(TolerantRecord):
    """Which rule fired and which checks the trigger passed on its way out."""

    rule: str = Field(description="The playbook's condition, as written.")
    signal: Name = Field(description="The signal that made the engine evaluate it, e.g. 'silence'.")
    checks: list[str] = Field(default_factory=list, description="Checks passed, in order, e.g. 'consent: email'.")
    choice: Choice | None = Field(None, description="How the variant was chosen (playbooks with variants).",
                                  exclude_if=_unset)


class Trigger(TolerantRecord):
    """An engagement trigger for channel senders. Senders deduplicate by ``trigger_id``.

    Senders should ignore fields they do not know: new optional fields may be added
    within ``schema_version`` 1.
    """

    type: Literal["trigger"] = "trigger"
    schema_version: Literal[1] = 1
    trigger_id: OutputId = Field(description="Deterministic: customer, playbook and episode.")
    customer_id: OutputId
    account_id: OutputId | None = None
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
    mode: Literal["live", "shadow"] = Field("live", description="Shadow triggers go to the shadow topic only.")
    released_at: AwareDatetime | None = Field(
        None, description="Event time a deferred trigger was released (quiet hours); None: sent at once.")
    fallback_of: OutputId | None = Field(None, description="The trigger whose delivery failed, for a fallback channel.")
    why: Why | None = None
    variant: Name | None = Field(None, description="The playbook variant chosen (playbooks with variants).",
                                 exclude_if=_unset)
    template: Name | None = Field(None, description="The chosen variant's template, for the sender.",
                                  exclude_if=_unset)


class DeadLetter(_Record):
    """A record that could not be used, with everything needed to inspect or replay it.

    A dead letter is bounded in size (the worker's ``deadletter_max_bytes``): when the original key
    and value do not fit whole, ``truncated`` is true and ``key_b64``/``value_b64`` hold a prefix;
    ``original_*_bytes`` and ``original_*_sha256`` identify the whole record, which stays on the
    source topic at ``source_partition``/``source_offset`` until its retention ends.
    """

    type: Literal["deadletter"] = "deadletter"
    reason: DeadLetterReason = Field(
        description="Why the record was not used; processing_error: it was valid but the engine raised on it"
                    " (the customer's state before it was kept).")
    detail: str = Field(max_length=2000, description="What was wrong, e.g. the exception type and message (bounded).")
    source_topic: str
    source_partition: int
    source_offset: int
    key_b64: str | None = Field(description="The original key, base64 (a prefix when truncated).")
    value_b64: str = Field(description="The original bytes, base64 (a prefix when truncated).")
    received_at: AwareDatetime
    truncated: bool = Field(False, description="True when key_b64/value_b64 hold only a prefix of the original.")
    original_value_bytes: int | None = Field(None, ge=0, description="Size of the original value (set when truncated).")
    original_value_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="sha256 (hex) of the whole original value (set when truncated).")
    original_key_bytes: int | None = Field(None, ge=0, description="Size of the original key (set when truncated).")
    original_key_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="sha256 (hex) of the whole original key (set when truncated).")


ControlRecord = Annotated[Profile | Outcome, Field(discriminator="type")]
CONTROL_ADAPTER: TypeAdapter[ControlRecord] = TypeAdapter(ControlRecord)
