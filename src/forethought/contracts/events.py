"""Inbound behaviour events: one envelope, seven kinds, discriminated by ``type``.

>>> event = EVENT_ADAPTER.validate_python({
...     "event_id": "e1", "customer_id": "c1", "type": "feature_used",
...     "occurred_at": "2026-11-22T10:00:00+01:00", "feature": "export"})
>>> type(event).__name__, event.feature, event.occurred_at.utcoffset().total_seconds()
('FeatureUsed', 'export', 3600.0)
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
)

from forethought.contracts.timetext import CLOCK, NO_CONTROL, OFFSET, TIME_DATE

ID_PATTERN = r"^[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?$"
"""An id: no control character, no space at either end (never trimmed: `` c1`` is rejected, not read as ``c1``)."""
Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN),
               Field(json_schema_extra=NO_CONTROL)]
OutputId = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
"""An id in a record Forethought writes (triggers): read back by channel senders as before this contract."""
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MAX_PROPERTY_CHARS = 1024  # a property's text, in events, profiles and a trigger's context
PropertyValue = Annotated[str, StringConstraints(max_length=MAX_PROPERTY_CHARS)] | int | float | bool | None

MAX_PROPERTIES = 32
MAX_QUANTITY = 1e18  # a usage report larger than this is a bug upstream, not usage
TIME_RANGE = "dated (as written, in its own offset) 1970-01-02 to 2099-12-30"
EARLIEST_DATE, LATEST_DATE = date(1970, 1, 2), date(2099, 12, 30)  # any offset keeps the instant in 1970..2099
LATEST_EVENT_TIME = 4_102_444_800.0  # 2100-01-01T00:00:00Z: no accepted instant reaches it
RFC3339_TIME = rf"^{TIME_DATE}T{CLOCK}(?:Z|[+-]{OFFSET})$"
"""``occurred_at``/``updated_at``: RFC 3339 with ``T``, seconds and an offset (``Z`` or ``±hh:mm``),
up to 9 fractional digits (kept to the microsecond), dated in ``TIME_RANGE``. Portable (no look-around)."""
_RFC3339 = re.compile(RFC3339_TIME)


def rfc3339_text(value: object) -> object:
    """Accept a datetime (built in Python) or a string matching ``RFC3339_TIME``; reject the rest
    (an epoch number, a time without offset, a space for ``T``) instead of coercing it.

    >>> rfc3339_text(1763800200)
    Traceback (most recent call last):
    ...
    ValueError: must be an RFC 3339 date-time string with offset, e.g. 2026-11-22T10:00:00Z, got int
    >>> rfc3339_text("2026-11-22 10:00:00Z")
    Traceback (most recent call last):
    ...
    ValueError: must be RFC 3339 with T, seconds and an offset, dated 1970-01-02 to 2099-12-30, got '2026-11-22 ...
    """
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be an RFC 3339 date-time string with offset, e.g. 2026-11-22T10:00:00Z, "
                         f"got {type(value).__name__}")
    if not _RFC3339.fullmatch(value):
        raise ValueError(f"must be RFC 3339 with T, seconds and an offset, dated {EARLIEST_DATE} to "
                         f"{LATEST_DATE}, got {value[:64]!r}")
    return value


def in_time_range(value: datetime) -> datetime:
    """Reject an instant the engine cannot compute with: its date (in its own offset) outside
    ``TIME_RANGE``, or an offset of seconds (the same rule as ``RFC3339_TIME``, for datetimes built in Python).

    >>> from datetime import timezone
    >>> in_time_range(datetime(2300, 1, 1, tzinfo=timezone.utc))
    Traceback (most recent call last):
    ...
    ValueError: must be dated (as written, in its own offset) 1970-01-02 to 2099-12-30, got 2300-01-01T00:00:00+00:00
    """
    offset = value.utcoffset()
    if not EARLIEST_DATE <= value.date() <= LATEST_DATE or offset is None or offset.seconds % 60:
        raise ValueError(f"must be {TIME_RANGE}, got {value.isoformat()}")
    return value


BoundedTime = Annotated[AwareDatetime, Strict(False), BeforeValidator(rfc3339_text), AfterValidator(in_time_range),
                        Field(json_schema_extra={"pattern": RFC3339_TIME, **NO_CONTROL})]
"""An aware instant the engine can compute with: an RFC 3339 string with offset, in ``TIME_RANGE``."""


def _type_required(schema: dict[str, Any]) -> None:
    """The wire contract requires ``type`` (the decoder dead-letters a record without it), though
    Python code may leave it to its default."""
    if "type" in schema.get("properties", {}):
        schema["required"] = ["type", *schema.get("required", [])]


STRICT_INPUT = ConfigDict(frozen=True, extra="forbid", strict=True, json_schema_extra=_type_required)
"""Inbound records: strict JSON types (no string for a number, no number for a time), unknown fields
forbidden by the model (the decoder strips and counts them first, unless the topic is strict)."""


class Envelope(BaseModel):
    """Fields every inbound event shares. ``occurred_at`` is event time, with an offset."""

    model_config = STRICT_INPUT

    event_id: Id = Field(description="Unique per event; a repeated id is ignored.")
    customer_id: Id = Field(description="Whose behaviour this is; the Kafka key.")
    occurred_at: BoundedTime = Field(description=f"Event time, RFC 3339 with offset, {TIME_RANGE}.")
    account_id: Id | None = None
    session_id: Id | None = None
    properties: dict[Name, PropertyValue] = Field(
        default_factory=dict, max_length=MAX_PROPERTIES,
        description=f"Free-form context, at most {MAX_PROPERTIES} keys.",
    )

    @cached_property
    def epoch(self) -> float:
        """Event time as POSIX seconds (computed once: the engine reads it several times per event)."""
        return self.occurred_at.timestamp()


class PageView(Envelope):
    type: Literal["page_view"] = "page_view"
    page: Name | None = None


class Click(Envelope):
    type: Literal["click"] = "click"
    target: Name | None = None


class SessionStart(Envelope):
    type: Literal["session_start"] = "session_start"


class SessionEnd(Envelope):
    type: Literal["session_end"] = "session_end"


class FeatureUsed(Envelope):
    type: Literal["feature_used"] = "feature_used"
    feature: Name


class ErrorEvent(Envelope):
    type: Literal["error"] = "error"
    code: Name
    severity: Literal["info", "warning", "error", "critical"] = "error"
    message: Annotated[str, StringConstraints(max_length=2048)] = ""


class Usage(Envelope):
    type: Literal["usage"] = "usage"
    metric: Name
    quantity: float = Field(ge=0, le=MAX_QUANTITY, allow_inf_nan=False,
                            description="Amount used, 0 to 1e18 (larger values are rejected as schema errors).")
    unit: Name | None = None


InboundEvent = Annotated[
    PageView | Click | SessionStart | SessionEnd | FeatureUsed | ErrorEvent | Usage,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[InboundEvent] = TypeAdapter(InboundEvent)

CLICKSTREAM_KINDS = frozenset({"page_view", "click", "session_start", "session_end", "feature_used"})
EVENT_KINDS = CLICKSTREAM_KINDS | {"error", "usage"}

