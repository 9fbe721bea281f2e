"""Inbound behaviour events: one envelope, seven kinds, discriminated by ``type``.

>>> event = EVENT_ADAPTER.validate_python({
...     "event_id": "e1", "customer_id": "c1", "type": "feature_used",
...     "occurred_at": "2026-11-22T10:00:00+01:00", "feature": "export"})
>>> type(event).__name__, event.feature, event.occurred_at.utcoffset().total_seconds()
('FeatureUsed', 'export', 3600.0)
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

Id = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MAX_PROPERTY_CHARS = 1024  # a property's text, in events, profiles and a trigger's context
PropertyValue = Annotated[str, StringConstraints(max_length=MAX_PROPERTY_CHARS)] | int | float | bool | None

MAX_PROPERTIES = 32
EARLIEST_EVENT_TIME = 0.0  # 1970-01-01T00:00:00Z: event-time buckets are non-negative
LATEST_EVENT_TIME = 4_102_444_800.0  # 2100-01-01T00:00:00Z: beyond any real clock; times stay within 32 bits
MAX_QUANTITY = 1e18  # a usage report larger than this is a bug upstream, not usage
TIME_RANGE = "between 1970-01-01T00:00:00Z and 2100-01-01T00:00:00Z (exclusive)"


def in_time_range(value: datetime) -> datetime:
    """Reject an instant outside the range the engine supports (see ``TIME_RANGE``).

    >>> from datetime import timezone
    >>> in_time_range(datetime(2300, 1, 1, tzinfo=timezone.utc))
    Traceback (most recent call last):
    ...
    ValueError: must be between 1970-01-01T00:00:00Z and 2100-01-01T00:00:00Z (exclusive), got 2300-01-01T00:00:00+00:00
    """
    if not EARLIEST_EVENT_TIME <= value.timestamp() < LATEST_EVENT_TIME:
        raise ValueError(f"must be {TIME_RANGE}, got {value.isoformat()}")
    return value


BoundedTime = Annotated[AwareDatetime, AfterValidator(in_time_range)]
"""An aware instant the engine can compute with: RFC 3339 with offset, in ``TIME_RANGE``."""


class Envelope(BaseModel):
    """Fields every inbound event shares. ``occurred_at`` is event time, with an offset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: Id = Field(description="Unique per event; a repeated id is ignored.")
    customer_id: Id = Field(description="Whose behaviour this is; the Kafka key.")
    occurred_at: BoundedTime = Field(description=f"Event time, RFC 3339 with offset, {TIME_RANGE}.")
    account_id: Id | None = None
    session_id: Id | None = None
    properties: dict[Name, PropertyValue] = Field(
        default_factory=dict, description=f"Free-form context, at most {MAX_PROPERTIES} keys."
    )

    @field_validator("properties")
    @classmethod
    def _bounded(cls, value: dict[str, PropertyValue]) -> dict[str, PropertyValue]:
        if len(value) > MAX_PROPERTIES:
            raise ValueError(f"at most {MAX_PROPERTIES} properties, got {len(value)}")
        return value

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

