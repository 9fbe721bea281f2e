"""The compact binary form of a customer state (the changelog value), and its field table.

Layout (docs/runtime/state-codec.md has the details)::

    0x81 | MessagePack array [presence bits, anchor, each present field's value, in table order]

The first byte is the format: ``0x80 | version`` for this binary form, ``{`` for the JSON dicts of
versions 2 and 3 that older workers wrote (``CustomerState.from_bytes`` still reads them). Bit ``i``
of the presence bits says that :data:`FIELDS` entry ``i`` differs from its default and has a value
in the array; times are whole seconds, milliseconds or microseconds after the anchor (the whole
second of ``last_seen``) when that gives them back exactly, else float64; rings are their counts
newest first, one byte each. MessagePack's C extension packs and unpacks the array: encoding runs
at about the speed of ``to_dict`` + orjson, decoding (which checks every field) somewhat slower; a
pure-Python byte codec measured twice as slow as JSON both ways (docs/runtime/state-codec.md).

Decoding never trusts the bytes: MessagePack bounds every length by the input's size and refuses
extension types, and every field checks the type and range of what it gets; anything wrong raises
ValueError.

**Versioning rule.** A new ``CustomerState`` field is one new line at the END of :data:`FIELDS`:
older encodings lack its bit and decode with the field's default, so no version bump. A field is
never removed or reordered (retire it: keep its line, stop setting it); changing how a field is
written needs a new version byte and a reader for the old one. A bit beyond the table (a newer
writer) is refused with ValueError.

>>> from forethought.core.config import EngineConfig
>>> from forethought.core.state import CustomerState
>>> state = CustomerState.new("c1", EngineConfig())
>>> state.last_seen, state.events = 1_790_000_000.25, 3
>>> raw = encode_fields(state)
>>> raw[0] == MAGIC, len(raw)
(True, 15)
>>> fields = decode_fields(raw, EngineConfig())  # the constructor's keywords
>>> fields["customer_id"], fields["last_seen"], fields["events"], fields["activity"].head
('c1', 1790000000.25, 3, -1)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import msgpack  # type: ignore[import-untyped]

from forethought.core.baselines import EwStats
from forethought.core.codec_kinds import (
    BYTES,
    CLOCK,
    COUNTS,
    EW,
    FLOAT,
    HOUR_BUCKETS,
    HOUR_RING,
    INT,
    INTS,
    KIND_COUNTS,
    LEDGER,
    NUMS,
    RING,
    SERIES,
    SNAPSHOT,
    STR,
    TIME,
    TIMES,
    Kind,
    Plain,
    as_is,
    checked_int,
    malformed,
)
from forethought.core.config import EngineConfig
from forethought.core.ledger import PolicyLedger
from forethought.core.windows import BucketRing

__all__ = ["FIELDS", "HOUR_BUCKETS", "MAGIC", "VERSION", "Field", "decode_fields", "encode_fields"]

VERSION = 1
MAGIC = 0x80 | VERSION
MAGIC_BYTE = bytes([MAGIC])


@dataclass(frozen=True, slots=True)
class Field:
    """One table entry: left out when ``skip(value, state)`` (default: equal to ``absent``); when
    absent, the constructor's default, or ``fill(config, decoded_so_far)`` when it needs one computed."""

    name: str
    kind: Kind
    absent: Any = None
    skip: Callable[[Any, Any], bool] | None = None
    fill: Callable[[EngineConfig, dict[str, Any]], Any] | None = None

    def left_out(self, value: Any, state: Any) -> bool:
        return value == self.absent if self.skip is None else self.skip(value, state)


def _required(_config: EngineConfig, _fields: dict[str, Any]) -> Any:
    raise ValueError("a required field is missing")


def _empty_ring(config: EngineConfig, _fields: dict[str, Any]) -> BucketRing:
    return BucketRing.empty(config.ring_buckets)


def _no_head(ring: BucketRing, _state: Any) -> bool:
    return ring.head < 0


# The field table, in CustomerState's order. APPEND ONLY: see the versioning rule above.
FIELDS: tuple[Field, ...] = (
    Field("customer_id", STR, skip=lambda _v, _s: False, fill=_required),
    Field("activity", RING, skip=_no_head, fill=_empty_ring),
    Field("errors", RING, skip=_no_head, fill=_empty_ring),
    Field("account_id", STR),
    Field("first_seen", TIME),
    Field("last_seen", TIME),
    Field("events", INT, 0),
    Field("late", INT, 0),
    Field("error_total", INT, 0),
    Field("by_type", KIND_COUNTS, {}),
    Field("visits", INT, 0),
    Field("gaps", EW, EwStats()),
    Field("long_gap", FLOAT, 0.0),
    Field("long_gap_at", TIME, 0.0),
    Field("day", INT, -1),
    Field("week", INTS, [0] * 7),
    Field("decline", NUMS, []),
    Field("usage", SERIES, {}),
    Field("error_baseline", EW, EwStats()),
    Field("burst_bucket", INT),
    Field("quiet_buckets", INT, 0),
    Field("deadline", TIME),
    Field("silence_fired_for", TIME),
    Field("recent_ids", BYTES, b""),
    Field("created", TIME, skip=lambda v, s: v == s.first_seen, fill=lambda _c, f: f.get("first_seen")),
    Field("features", TIMES, {}),
    Field("error_codes", COUNTS, {}),
    Field("error_severity", COUNTS, {}),
    Field("daily_at", TIME),
    Field("policy", LEDGER, PolicyLedger(), skip=lambda v, _s: v.is_empty()),
    Field("snapshot", SNAPSHOT),
    Field("hours", HOUR_RING, skip=_no_head),
    Field("session_start", CLOCK),
    Field("active_minutes", INT, 0),
    Field("bucket_events", INT, 0),
    Field("minute_usage", FLOAT, 0.0),
    Field("odd", INTS, []),
)


def encode_fields(state: Any, table: tuple[Field, ...] = FIELDS) -> bytes:
    """The binary form of ``state`` (any object with the table's attributes)."""
    last = state.last_seen
    anchor = int(last) if last is not None and -(2**53) < last < 2**53 else 0
    out: list[Plain] = [0, anchor]
    present = 0
    values = _VALUES(state) if table is FIELDS else attrgetter(*(f.name for f in table))(state)
    append = out.append
    for (bit, absent, skip, write), value in zip(_plan(table), values):
        if (value == absent) if skip is None else skip(value, state):
            continue
        present |= bit
        append(value if write is None else write(value, anchor))
    out[0] = present
    packed: bytes = msgpack.packb(out, use_bin_type=True, unicode_errors="surrogatepass")
    return MAGIC_BYTE + packed


def decode_fields(raw: bytes, config: EngineConfig, table: tuple[Field, ...] = FIELDS) -> dict[str, Any]:
    """The constructor keywords of a state in the binary form; ValueError when ``raw`` is not one."""
    if raw[:1] != MAGIC_BYTE:
        raise ValueError(f"not a version {VERSION} binary state")
    items = msgpack.unpackb(memoryview(raw)[1:], raw=False, strict_map_key=True, unicode_errors="surrogatepass",
                            ext_hook=_no_extensions)
    if type(items) is not list or len(items) < 2:
        raise malformed("state")
    present, anchor = checked_int(items[0]), checked_int(items[1])
    if not 0 <= present < 1 << len(table):
        raise ValueError("the state has fields this version does not know (written by a newer one?)")
    if len(items) != 2 + bin(present).count("1"):
        raise malformed("state (wrong number of fields)")
    decoded: dict[str, Any] = {}
    at = 2
    for bit, name, read, fill, plain in _reads(table):
        if present & bit:
            value = items[at]
            if plain is None:
                decoded[name] = read(value, anchor, config)
            elif type(value) is plain:
                decoded[name] = value
            else:
                raise malformed(name)
            at += 1
        elif fill is not None:
            decoded[name] = fill(config, decoded)
    return decoded


def _no_extensions(code: int, _data: bytes) -> Any:
    raise ValueError(f"a MessagePack extension type ({code}) in a state")


def _plan(table: tuple[Field, ...]) -> tuple[tuple[int, Any, Any, Callable[[Any, int], Plain] | None], ...]:
    """Per field: its presence bit, what it is left out as, and how it is written (None: as it is)."""
    if table is FIELDS and _PLAN:
        return _PLAN
    return tuple((1 << i, f.absent, f.skip, None if f.kind.out is as_is else f.kind.out) for i, f in enumerate(table))


def _reads(table: tuple[Field, ...]) -> tuple[tuple[int, str, Any, Any, type | None], ...]:
    """Per field: its presence bit, name, reader, default maker and plain type."""
    if table is FIELDS and _READ:
        return _READ
    return tuple((1 << i, f.name, f.kind.back, f.fill, f.kind.plain) for i, f in enumerate(table))


_VALUES = attrgetter(*(f.name for f in FIELDS))
_PLAN: tuple[tuple[int, Any, Any, Callable[[Any, int], Plain] | None], ...] = ()
_READ: tuple[tuple[int, str, Any, Any, type | None], ...] = ()
_PLAN, _READ = _plan(FIELDS), _reads(FIELDS)
