"""Decode raw bytes into an inbound event, or say precisely why not.

>>> decode_event(b'{"event_id":"e","customer_id":"c","type":"click",'
...              b'"occurred_at":"2026-11-22T10:00:00Z"}').customer_id
'c'
>>> decode_event(b'not json').reason
'not_json'
>>> decode_event(b'{"type":"click"}').reason
'missing_customer'

A field the contract does not know is ignored and reported (the tolerant reader), unless the
topic is strict, where it dead-letters the record as ``unknown_field``:

>>> late = b'{"event_id":"e","customer_id":"c","type":"click","occurred_at":"2026-11-22T10:00:00Z","ab":"b"}'
>>> ignored = []
>>> decode_event(late, ignored=ignored).type, ignored
('click', ['ab'])
>>> decode_event(late, strict=True).reason
'unknown_field'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import Field, ValidationError

from forethought.contracts.bounded import (
    DEFAULT_DEADLETTER_MAX_BYTES,
    KEY_PREFIX_BYTES,
    MIN_DEADLETTER_MAX_BYTES,
    b64,
    bound_letter,
    clean_text,
)
from forethought.contracts.events import (
    EVENT_ADAPTER,
    EVENT_KINDS,
    Click,
    ErrorEvent,
    FeatureUsed,
    InboundEvent,
    PageView,
    SessionEnd,
    SessionStart,
    Usage,
)
from forethought.contracts.records import CONTROL_ADAPTER, DeadLetter, DeadLetterReason, Outcome, Profile

CONTROL_KINDS = frozenset({"profile", "outcome"})
Record = InboundEvent | Profile | Outcome

FIELDS: dict[str, frozenset[str]] = {
    model.model_fields["type"].default: frozenset(model.model_fields)
    for model in (PageView, Click, SessionStart, SessionEnd, FeatureUsed, ErrorEvent, Usage, Profile, Outcome)
}
"""The top-level fields the contract knows, per record kind; any other is an unknown field."""
UNKNOWN_SHOWN = 5  # unknown field names quoted in a dead letter's detail

DEFAULT_MAX_BYTES = 64 * 1024
MaxEventBytes = Annotated[int, Field(ge=256, le=1024 * 1024)]
"""The bounds of ``FORETHOUGHT_MAX_EVENT_BYTES``: the worker's setting and the producer SDK's default."""
DETAIL_CHARS = 2000
__all__ = ["DEFAULT_DEADLETTER_MAX_BYTES", "DEFAULT_MAX_BYTES", "KEY_PREFIX_BYTES", "MIN_DEADLETTER_MAX_BYTES",
           "MaxEventBytes", "Rejection",
           "bounded_dead_letter", "decode_event", "summarize", "validate_event"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was not used; becomes a dead letter."""

    reason: DeadLetterReason
    detail: str

    def dead_letter(
        self, *, source: str, partition: int, offset: int, key: bytes | None, value: bytes | None, at: float,
        max_bytes: int = DEFAULT_DEADLETTER_MAX_BYTES,
    ) -> DeadLetter:
        """The dead letter for this rejection: the original bytes and where they came from, in at
        most ``max_bytes`` of JSON (see :func:`bounded_dead_letter`).

        >>> Rejection("not_json", "x").dead_letter(source="t", partition=0, offset=7, key=None,
        ...                                         value=b"{", at=0.0).value_b64
        'ew=='
        """
        fields = {"reason": self.reason, "detail": self.detail, "source_topic": source,
                  "source_partition": partition, "source_offset": offset,
                  "received_at": datetime.fromtimestamp(at, tz=UTC)}
        return bounded_dead_letter(fields, key, value or b"", max_bytes)


def bounded_dead_letter(fields: dict[str, Any], key: bytes | None, value: bytes, max_bytes: int) -> DeadLetter:
    """A dead letter whose JSON is at most ``max_bytes`` UTF-8 bytes: the whole key and value when
    they fit, else a prefix of each with the originals' sizes and sha256 (``truncated``).

    >>> import hashlib
    >>> from datetime import datetime, timezone
    >>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> where = {"reason": "oversized", "detail": "900000 bytes", "source_topic": "events.usage",
    ...          "source_partition": 3, "source_offset": 42, "received_at": at}
    >>> letter = bounded_dead_letter(where, b"c1", b"x" * 900_000, 20_000)
    >>> letter.truncated, letter.original_value_bytes, len(letter.model_dump_json().encode()) <= 20_000
    (True, 900000, True)
    >>> letter.original_value_sha256 == hashlib.sha256(b"x" * 900_000).hexdigest()
    True
    """
    fields = {**fields, "detail": clean_text(str(fields.get("detail", "")), DETAIL_CHARS)}
    whole = DeadLetter(**fields, key_b64=b64(key), value_b64=b64(value) or "")
    return bound_letter(whole, max_bytes, text_field="detail", text_chars=DETAIL_CHARS, value=value, key=key)


def decode_event(
    raw: bytes | None,
    allowed_kinds: frozenset[str] = EVENT_KINDS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    strict: bool = False,
    ignored: list[str] | None = None,
) -> Record | Rejection:
    """Validate ``raw`` as one inbound record (an event, or a profile or outcome where the
    topic allows them) of a kind allowed on the topic it came from.

    Top-level fields the contract does not know are dropped and their names appended to
    ``ignored`` (when given, and only for a record that decodes); with ``strict`` they reject it
    (``unknown_field``). Types are strict: no string for a number, no number for a time."""
    if raw is None or len(raw) > max_bytes:
        size = 0 if raw is None else len(raw)
        return Rejection("oversized" if size else "not_json", f"{size} bytes (limit {max_bytes})")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", str(exc))
    return validate_event(data, allowed_kinds, strict=strict, ignored=ignored)


def validate_event(
    data: Any, allowed_kinds: frozenset[str] = EVENT_KINDS, *, strict: bool = False, ignored: list[str] | None = None,
) -> Record | Rejection:
    """Validate already-parsed JSON ``data`` as a record of one of ``allowed_kinds`` (see :func:`decode_event`)."""
    if not isinstance(data, dict):
        return Rejection("schema", f"expected a JSON object, got {type(data).__name__}")
    customer = data.get("customer_id")
    if not isinstance(customer, str) or not customer.strip():
        return Rejection("missing_customer", "customer_id is missing or empty")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in EVENT_KINDS | CONTROL_KINDS:
        return Rejection("unknown_type", f"type {kind!r} is not one of {sorted(EVENT_KINDS | CONTROL_KINDS)}")
    if kind not in allowed_kinds:
        return Rejection("wrong_topic", f"type {kind!r} does not belong on this topic")
    unknown = data.keys() - FIELDS[kind]
    if unknown:
        data = {name: value for name, value in data.items() if name not in unknown}
    try:
        record = CONTROL_ADAPTER.validate_python(data) if kind in CONTROL_KINDS else EVENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        return Rejection("schema", summarize(exc))
    if unknown:
        names = sorted(unknown)
        if strict:
            shown = ", ".join(repr(name[:64]) for name in names[:UNKNOWN_SHOWN])
            more = f" (+{len(names) - UNKNOWN_SHOWN} more)" if len(names) > UNKNOWN_SHOWN else ""
            return Rejection("unknown_field", f"{kind}: fields not in the contract on a strict topic: {shown}{more}")
        if ignored is not None:
            ignored.extend(names)
    return record


def summarize(exc: ValidationError, limit: int = 3) -> str:
    """A one-line summary of a pydantic error naming the fields.

    >>> from forethought.contracts.events import EVENT_ADAPTER
    >>> try:
    ...     EVENT_ADAPTER.validate_python({"type": "usage", "event_id": "e", "customer_id": "c",
    ...         "occurred_at": "2026-01-01T00:00:00Z", "metric": "m", "quantity": -1})
    ... except ValidationError as e:
    ...     print(summarize(e))
    usage.quantity: Input should be greater than or equal to 0
    """
    parts = [
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:limit]
    ]
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def describe(error: BaseException, limit: int = 500) -> str:
    """An exception as ``Type: message``, bounded (a message may quote a whole record).

    >>> describe(ZeroDivisionError("float division by zero"))
    'ZeroDivisionError: float division by zero'
    >>> len(describe(ValueError("x" * 10_000)))
    500
    """
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


TIME_FIELDS = ("occurred_at", "updated_at")


def event_time(raw: bytes) -> float:
    """The POSIX time of a record's ``occurred_at`` (events, outcomes) or ``updated_at`` (profiles),
    read without validating the rest (replay sorts by it; the worker's input ordering reads it).

    >>> event_time(b'{"occurred_at": "1970-01-01T00:01:00Z"}')
    60.0
    """
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    for name in TIME_FIELDS:
        value = data.get(name)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                raise ValueError(f"{name} has no offset")
            return parsed.timestamp()
    raise ValueError(f"no {' or '.join(TIME_FIELDS)} field")
