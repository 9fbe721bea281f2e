"""Kafka record headers and timestamps of what the SDK sends.

Every record carries ``content-type: application/json``; a W3C ``traceparent`` (checked) and any
headers of your own may follow. The record's Kafka timestamp is an aware ``datetime`` or epoch
milliseconds.

>>> trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
>>> [name for name, _ in headers_for({"source": "billing"}, traceparent=trace)]
['content-type', 'traceparent', 'source']
>>> headers_for(None, traceparent="00-xyz")
Traceback (most recent call last):
...
forethought.client.headers.InvalidHeader: traceparent '00-xyz' is not a W3C trace context ...
>>> from datetime import datetime, timezone
>>> timestamp_ms(datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)), timestamp_ms(1_700_000_000_000)
(1795341600000, 1700000000000)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

HeaderValue = str | bytes
Timestamp = datetime | int
CONTENT_TYPE = "application/json"
RESERVED = frozenset({"content-type"})
# https://www.w3.org/TR/trace-context/#traceparent-header: version-traceid-parentid-flags, lower-case hex
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 * 1024  # names and values together: headers are metadata, not payload


class InvalidHeader(ValueError):
    """A header the SDK will not send (a reserved name, a malformed ``traceparent``, too many or too large)."""


def check_traceparent(value: str) -> str:
    """``value`` when it is a valid W3C ``traceparent``; ``InvalidHeader`` otherwise.

    >>> check_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01")
    Traceback (most recent call last):
    ...
    forethought.client.headers.InvalidHeader: traceparent '00-0000...' is not a W3C trace context ...
    """
    if not _TRACEPARENT.fullmatch(value):
        shown = value if len(value) <= 16 else value[:7] + "..."
        raise InvalidHeader(f"traceparent {shown!r} is not a W3C trace context "
                            "(version-traceid-parentid-flags in lower-case hex, ids not all zero)")
    return value


def headers_for(extra: Mapping[str, HeaderValue] | None,
                traceparent: str | None = None) -> tuple[tuple[str, bytes], ...]:
    """The headers of one record: content type, trace context, then ``extra`` (text is UTF-8)."""
    given: dict[Any, object] = dict(extra or {})  # checked one by one: callers may pass anything
    if reserved := RESERVED & {name.lower() for name in given if isinstance(name, str)}:
        raise InvalidHeader(f"header {sorted(reserved)[0]!r} is set by the SDK (the value is always JSON)")
    if traceparent is not None:
        if "traceparent" in given:
            raise InvalidHeader("traceparent given twice: as an argument and in headers")
        given = {"traceparent": traceparent, **given}  # first, as tracing tools expect
    if len(given) > MAX_HEADERS:
        raise InvalidHeader(f"at most {MAX_HEADERS} headers, got {len(given)}")
    headers: list[tuple[str, bytes]] = [("content-type", CONTENT_TYPE.encode())]
    for name, value in given.items():
        if not isinstance(name, str) or not name:
            raise InvalidHeader(f"a header name is a non-empty string, got {name!r}")
        if not isinstance(value, str | bytes):
            raise InvalidHeader(f"header {name!r}: expected str or bytes, got {type(value).__name__}")
        if name == "traceparent":
            check_traceparent(value.decode(errors="replace") if isinstance(value, bytes) else value)
        headers.append((name, value.encode() if isinstance(value, str) else value))
    if (size := sum(len(n.encode()) + len(v) for n, v in headers)) > MAX_HEADER_BYTES:
        raise InvalidHeader(f"headers are {size} bytes, over {MAX_HEADER_BYTES}")
    return tuple(headers)


def timestamp_ms(when: object) -> int:
    """Epoch milliseconds of an aware ``datetime`` (or of epoch milliseconds given as ``int``).

    >>> timestamp_ms(datetime(2026, 1, 1))
    Traceback (most recent call last):
    ...
    ValueError: a record timestamp needs a time zone (got the naive 2026-01-01T00:00:00)
    >>> timestamp_ms(-5)
    Traceback (most recent call last):
    ...
    ValueError: a record timestamp is epoch milliseconds >= 0, got -5
    """
    if isinstance(when, datetime):
        if when.utcoffset() is None:
            raise ValueError(f"a record timestamp needs a time zone (got the naive {when.isoformat()})")
        ms = round(when.timestamp() * 1000)
    elif isinstance(when, int) and not isinstance(when, bool):
        ms = when
    else:
        raise ValueError(f"a record timestamp is an aware datetime or epoch milliseconds, got {type(when).__name__}")
    if ms < 0:
        raise ValueError(f"a record timestamp is epoch milliseconds >= 0, got {ms}")
    return ms
