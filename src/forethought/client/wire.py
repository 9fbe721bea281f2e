"""From a contract model to Kafka bytes: which topic, which key, which value, and whether it fits.

The topic comes from the catalogue (``streams/topics.yaml``): a record goes to the most specific
topic whose ``kinds`` list its ``type`` (``events.errors`` for an error rather than the internal
``forethought.rekeyed``, which accepts every event kind).

>>> from forethought.client import events
>>> router = Router(prefix="t1.")
>>> wire = router.encode(events.click("cust-42", target="buy", event_id="e-1",
...                                   occurred_at="2026-11-22T10:00:00+01:00"))
>>> wire.topic, wire.key
('t1.events.clickstream', b'cust-42')
>>> wire.value.decode()
'{"event_id":"e-1","customer_id":"cust-42","occurred_at":"2026-11-22T10:00:00+01:00","type":"click","target":"buy"}'
>>> Router(max_event_bytes=300).encode(events.page_view("cust-42", properties={"x": "y" * 400}))
Traceback (most recent call last):
...
forethought.client.wire.RecordTooLarge: page_view ... is 5... bytes, over the worker's limit of 300 bytes ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from forethought.client.headers import HeaderValue, Timestamp, headers_for, timestamp_ms
from forethought.contracts.catalogue import Catalogue, load_catalogue
from forethought.contracts.decode import summarize
from forethought.contracts.events import EVENT_ADAPTER, EVENT_KINDS, InboundEvent
from forethought.contracts.records import CONTROL_ADAPTER, Outcome, Profile

Record = InboundEvent | Profile | Outcome
PRODUCER_KINDS = EVENT_KINDS | {"profile", "outcome"}


class InvalidRecord(ValueError):
    """Input that is not a valid record; ``reason`` is ``not_json``, ``unknown_type`` or ``schema``."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


class RecordTooLarge(ValueError):
    """The serialized record exceeds the worker's ``max_event_bytes``; it was not sent."""


class UnroutableRecord(ValueError):
    """The record's kind is not one producers send, or no catalogue topic takes it."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """One record ready for Kafka."""

    record_id: str
    kind: str
    topic: str
    key: bytes
    value: bytes
    timestamp_ms: int | None = None  # the Kafka record's timestamp (CreateTime)
    headers: tuple[tuple[str, bytes], ...] = ()


def record_id(record: BaseModel) -> str:
    """The id a report names a record by: ``event_id``, ``outcome_id`` or the profile's customer."""
    for name in ("event_id", "outcome_id"):
        if isinstance(value := getattr(record, name, None), str):
            return value
    return f"profile:{getattr(record, 'customer_id', '?')}"


def to_json(record: BaseModel) -> bytes:
    """Compact JSON: top-level fields left at their defaults are omitted (``type`` is always kept)."""
    fields = type(record).model_fields
    defaults = {
        name for name, info in fields.items()
        if name != "type" and not info.is_required()
        and getattr(record, name) == info.get_default(call_default_factory=True)
    }
    return orjson.dumps(record.model_dump(mode="json", exclude=defaults))


def decode_record(raw: bytes | str) -> Record:
    """Parse and validate one JSON document as any record a producer sends.

    >>> decode_record('{"type": "trigger"}')
    Traceback (most recent call last):
    ...
    forethought.client.wire.InvalidRecord: type 'trigger' is not one a producer sends ...
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord("not_json", str(exc)) from None
    return parse_record(data)


def parse_record(data: Any) -> Record:
    """Validate parsed JSON as any record a producer sends; ``InvalidRecord`` says why not."""
    if not isinstance(data, dict):
        raise InvalidRecord("schema", f"expected a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in PRODUCER_KINDS:
        raise InvalidRecord("unknown_type", f"type {kind!r} is not one a producer sends "
                                            f"({', '.join(sorted(PRODUCER_KINDS))})")
    adapter: Any = EVENT_ADAPTER if kind in EVENT_KINDS else CONTROL_ADAPTER
    try:
        return adapter.validate_python(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise InvalidRecord("schema", summarize(exc)) from None


def routes(catalogue: Catalogue, prefix: str = "") -> dict[str, str]:
    """Kind → physical topic: the catalogue topic with the fewest kinds that lists it."""
    table: dict[str, tuple[int, str]] = {}
    for spec in catalogue.topics:
        for kind in spec.kinds:
            if kind in PRODUCER_KINDS and (kind not in table or len(spec.kinds) < table[kind][0]):
                table[kind] = (len(spec.kinds), f"{prefix}{spec.name}")
    missing = PRODUCER_KINDS - table.keys()
    if missing:
        raise UnroutableRecord(f"no catalogue topic lists the kinds {sorted(missing)}")
    return {kind: topic for kind, (_, topic) in table.items()}


class Router:
    """Encodes records for their catalogue topic, refusing any the worker would dead-letter as oversized."""

    def __init__(self, prefix: str = "", catalogue: Catalogue | None = None,
                 max_event_bytes: int | None = None) -> None:
        if catalogue is None or max_event_bytes is None:
            from forethought.client.settings import ClientSettings

            defaults = ClientSettings()
            catalogue = load_catalogue(defaults.topics_file) if catalogue is None else catalogue
            max_event_bytes = defaults.max_event_bytes if max_event_bytes is None else max_event_bytes
        self.routes = routes(catalogue, prefix)
        self.max_event_bytes = max_event_bytes

    def topic_for(self, kind: str) -> str:
        """The physical topic for ``kind``."""
        try:
            return self.routes[kind]
        except KeyError:
            raise UnroutableRecord(f"{kind!r} is not a kind producers send "
                                   f"(one of {sorted(PRODUCER_KINDS)})") from None

    def encode(self, record: BaseModel, *, timestamp: Timestamp | None = None,
               headers: Mapping[str, HeaderValue] | None = None, traceparent: str | None = None) -> Encoded:
        """Topic, key (customer_id), JSON value, timestamp and headers of ``record``; raises when it
        cannot be sent (``RecordTooLarge``, ``UnroutableRecord``, ``InvalidHeader``, ``ValueError``).

        The timestamp defaults to the record's own time (``occurred_at``, a profile's ``updated_at``);
        the headers always carry ``content-type: application/json``.
        """
        kind = str(getattr(record, "type", type(record).__name__))
        topic = self.topic_for(kind)
        rid = record_id(record)
        value = to_json(record)
        if len(value) > self.max_event_bytes:
            raise RecordTooLarge(
                f"{kind} {rid} is {len(value)} bytes, over the worker's limit of {self.max_event_bytes} "
                "bytes (FORETHOUGHT_MAX_EVENT_BYTES); it was not sent")
        customer_id = getattr(record, "customer_id")  # noqa: B009 - any model with a customer_id is accepted
        when = timestamp if timestamp is not None else record_time(record)
        return Encoded(rid, kind, topic, str(customer_id).encode(), value,
                       None if when is None else timestamp_ms(when), headers_for(headers, traceparent))


def record_time(record: BaseModel) -> datetime | None:
    """When ``record`` happened: ``occurred_at`` (events, outcomes) or ``updated_at`` (profiles)."""
    for name in ("occurred_at", "updated_at"):
        if isinstance(value := getattr(record, name, None), datetime):
            return value
    return None
