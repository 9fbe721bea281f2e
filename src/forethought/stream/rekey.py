"""The re-key hop: a record that is not on its customer's partition goes round once more.

A valid record whose Kafka key is not its ``customer_id``, or whose partition is not the one Kafka's
murmur2 gives that key (librdkafka's default ``consistent_random`` partitioner is CRC32), would meet
its customer's state on another worker. The worker publishes it again to ``forethought.rekeyed``,
keyed by ``customer_id`` (its producer places it by murmur2) and processes it there. The hop keeps
what the producer said about the record:

* **its headers** (``traceparent``, ``content-type``, your own), in order, as opaque bytes: the worker
  never reads or interprets them. They are bounded (:data:`MAX_HEADERS`, :data:`MAX_HEADER_BYTES`, as the
  SDK's): a record whose headers are larger keeps those that fit, the rest are dropped and logged,
  so that no producer's record can make the re-publication fail (which would stop the worker);
* **its timestamp**: the record on ``forethought.rekeyed`` has the original record's timestamp, so
  ``forethought_event_to_trigger_seconds`` measures from the original record, hop included. Not when
  it is older than :data:`MAX_CARRIED_AGE` (a backfill): the broker deletes by record timestamp, and a
  copy stamped days back could be deleted with its segment before the worker reads it (Kafka Streams
  purges its repartition topics itself for that reason). Such a copy is stamped when it is sent;
* and one header of its own, :data:`FROM_HEADER`, ``<topic>:<partition>:<offset>`` of the record it
  copies (a header of that name from the producer is replaced, never trusted).

>>> from forethought.stream.processor import RawRecord
>>> record = RawRecord("events.clickstream", 2, 17, b"session-9", b"{}", 1764000000.25,
...                    (("traceparent", b"00-4bf9-01"), ("content-type", b"application/json")))
>>> hop = rekeyed(record, b"cust-42", wall=1764000001.0)
>>> hop.key, hop.timestamp
(b'cust-42', 1764000000.25)
>>> for name, value in hop.headers:
...     print(name, value)
traceparent b'00-4bf9-01'
content-type b'application/json'
forethought-rekeyed-from b'events.clickstream:2:17'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from forethought.ops.logs import get_logger

Header = tuple[str, bytes | None]  # as Kafka clients give them: a null value is allowed


class Consumed(Protocol):
    """What the hop reads of a consumed record (``stream.processor.RawRecord`` is one; no import of it
    here, the processor imports this module)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> float | None: ...
    @property
    def headers(self) -> Sequence[Header]: ...

FROM_HEADER = "forethought-rekeyed-from"
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 * 1024  # names and values together: the SDK's bound too
MAX_CARRIED_AGE = 12 * 3600.0  # seconds; at most half of forethought.rekeyed's retention (a test checks)

log = get_logger("worker")


@dataclass(frozen=True, slots=True)
class Rekeyed:
    """One record for ``forethought.rekeyed``: the customer's key, the original value, headers and
    timestamp (POSIX seconds; None when the original had none, and the producer stamps it)."""

    key: bytes
    value: bytes
    headers: tuple[Header, ...]
    timestamp: float | None


def rekeyed(record: Consumed, key: bytes, wall: float) -> Rekeyed:
    """``record`` keyed by ``key`` (its ``customer_id``), with its headers, timestamp and origin;
    ``wall`` is now (POSIX seconds)."""
    kept = carried(record.headers)
    if dropped := sum(name != FROM_HEADER for name, _ in record.headers) - len(kept):
        log.warning("rekey_headers_dropped", topic=record.topic, partition=record.partition,
                    offset=record.offset, kept=len(kept), dropped=dropped)
    origin = f"{record.topic}:{record.partition}:{record.offset}".encode()
    return Rekeyed(key, record.value or b"", (*kept, (FROM_HEADER, origin)), carried_timestamp(record.timestamp, wall))


def carried_timestamp(timestamp: float | None, wall: float) -> float | None:
    """The copy's timestamp: the original's, unless it has none or is older than :data:`MAX_CARRIED_AGE`
    (then None: the producer stamps the copy when it sends it).

    >>> carried_timestamp(1000.0, wall=2000.0), carried_timestamp(1000.0, wall=1000.0 + 13 * 3600)
    (1000.0, None)
    >>> carried_timestamp(-0.001, wall=2000.0), carried_timestamp(None, wall=2000.0)  # Kafka's -1 ms: none
    (None, None)
    """
    if timestamp is None or timestamp < 0 or timestamp < wall - MAX_CARRIED_AGE:
        return None
    return timestamp


def carried(headers: Sequence[Header]) -> tuple[Header, ...]:
    """The headers the hop keeps: in order, all but :data:`FROM_HEADER`, while within the bounds.

    >>> carried([("a", b"1"), (FROM_HEADER, b"forged"), ("b", None)])
    (('a', b'1'), ('b', None))
    >>> len(carried([("h", b"x" * 1000)] * 40))  # 16 KiB hold 16 of them
    16
    """
    kept: list[Header] = []
    size = 0
    for name, value in headers:
        if name == FROM_HEADER:
            continue
        size += len(name.encode()) + len(value or b"")
        if len(kept) == MAX_HEADERS or size > MAX_HEADER_BYTES:
            break
        kept.append((name, value))
    return tuple(kept)


def headers_of(given: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None) -> Sequence[Header]:
    """A consumed message's headers as a sequence of pairs (Faust allows a mapping too).

    >>> headers_of(None), headers_of({"a": b"1"}), headers_of([("a", b"1"), ("a", None)])
    ((), (('a', b'1'),), [('a', b'1'), ('a', None)])
    """
    if not given:
        return ()
    return tuple(given.items()) if isinstance(given, Mapping) else given
