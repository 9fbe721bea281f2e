"""The compact binary form of a customer state (the changelog value), and its field table.

Layout (docs/runtime/state-codec.md has the details)::

    0x83 | MessagePack array [presence bits, anchor, each present field's value, in table order]

where the field ``slices`` is a map from each detector's short key to its slice written the
same way: ``[slice version, presence bits, each present field's value]`` (a slice with every field
at its default is left out). The first byte is the format: ``0x80 | version`` for this binary form
(``0x81``, version 1, had one flat table before detectors had slices: still read, by
:data:`FIELDS_V1`; ``0x82``, version 2, the same table as now with the ledger's names spelled
out: still read), ``{`` for the JSON dicts of versions 2 and 3 that older workers wrote
(``CustomerState.from_bytes`` still reads them). Bit ``i`` of the presence bits says that table
entry ``i`` differs from its default and has a value in the array; times are whole seconds,
milliseconds or microseconds after the anchor (the whole second of ``last_seen``) when that gives
them back exactly, else float64; rings are their counts newest first, one byte each. MessagePack's C
extension packs and unpacks the array: encoding runs at about the speed of ``to_dict`` + orjson,
decoding (which checks every field) somewhat slower; a pure-Python byte codec measured twice as slow
as JSON both ways (docs/runtime/state-codec.md).

Decoding never trusts the bytes: MessagePack bounds every length by the input's size and refuses
extension types, and every field checks the type and range of what it gets; anything wrong raises
ValueError.

**Versioning rule** (the same for the core's table and every slice's). A new field is one new line
at the END of its table:
older encodings lack its bit and decode with the field's default, so no version bump. A field is
never removed or reordered (retire it: keep its line, stop setting it); changing how a field is
written needs a new version (the format byte for the core, the slice's ``VERSION`` for a slice) and a
reader for the old one. A bit beyond the table or a slice version above the reader's (a newer
writer) is refused with ValueError.

>>> from forethought.core.config import EngineConfig
>>> from forethought.core.state import CustomerState
>>> state = CustomerState.new("c1", EngineConfig())
>>> state.last_seen, state.events = 1_790_000_000.25, 3
>>> raw = encode_fields(state)
>>> raw[0] == MAGIC, len(raw)
(True, 16)
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

from forethought.core import applied as applied_codec
from forethought.core.applied import NOTHING, Applied
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
    checked_map,
    malformed,
)
from forethought.core.ledger import PolicyLedger
from forethought.core.ledger_codec import LEDGER
from forethought.core.views import EngineView
from forethought.core.windows import BucketRing

__all__ = ["FIELDS", "HOUR_BUCKETS", "MAGIC", "VERSION", "Field", "decode_fields", "encode_fields"]

VERSION = 3  # 3: the policy ledger names what was sent by number (core.ledger_codec); 2 is read alike
MAGIC = 0x80 | VERSION
MAGIC_BYTE = bytes([MAGIC])
MAGIC_V2 = bytes([0x82])  # the same table; only the ledger's sent entries spelled their names out
_SAME_TABLE = (MAGIC_BYTE, MAGIC_V2)  # the format bytes FIELDS reads


@dataclass(frozen=True, slots=True)
class Field:
    """One table entry: left out when ``skip(value, state)`` (default: equal to ``absent``); when
    absent, the constructor's default, or ``fill(config, decoded_so_far)`` when it needs one computed."""

    name: str
    kind: Kind
    absent: Any = None
    skip: Callable[[Any, Any], bool] | None = None
    fill: Callable[[EngineView, dict[str, Any]], Any] | None = None

    def left_out(self, value: Any, state: Any) -> bool:
        return value == self.absent if self.skip is None else self.skip(value, state)


def _required(_config: EngineView, _fields: dict[str, Any]) -> Any:
    raise ValueError("a required field is missing")


def _empty_ring(config: EngineView, _fields: dict[str, Any]) -> BucketRing:
    return BucketRing.empty(config.ring_buckets)


def _no_head(ring: BucketRing, _state: Any) -> bool:
    return ring.head < 0


def _slices_out(slices: dict[str, Any], anchor: int) -> Plain:
    """Each detector's slice under its short key, as ``[version, presence bits, values...]``; a
    slice with every field at its default is left out."""
    out = {}
    for piece in slices.values():
        if (items := piece.encode(anchor)) is not None:
            out[piece.KEY] = items
    return out


def _slices_back(v: Plain, anchor: int, config: EngineView) -> dict[str, Any]:
    slices: dict[str, Any] = config.detectors.decode_slices(checked_map(v), anchor, config)
    return slices


def _new_slices(config: EngineView, _fields: dict[str, Any]) -> dict[str, Any]:
    slices: dict[str, Any] = config.detectors.new_slices(config)
    return slices


SLICES = Kind(_slices_out, _slices_back)


def _applied_back(v: Plain, _anchor: int, _config: EngineView) -> Applied:
    if type(v) is not bytes:
        raise malformed("applied offsets list")
    return applied_codec.decode(v)


APPLIED = Kind(lambda v, _anchor: applied_codec.encode(v), _applied_back)  # varints (core.applied)

# The field table of version 2, in CustomerState's order. APPEND ONLY: see the versioning rule above.
# What belongs to one detector is in its slice (``slices``: forethought.core.plugin.Slice).
FIELDS: tuple[Field, ...] = (  # the most often present first: their presence bits fit one byte
    Field("customer_id", STR, skip=lambda _v, _s: False, fill=_required),
    Field("activity", RING, skip=_no_head, fill=_empty_ring),
    Field("slices", SLICES, skip=lambda v, _s: not v, fill=_new_slices),
    Field("last_seen", TIME),
    Field("first_seen", TIME),
    Field("events", INT, 0),
    Field("visits", INT, 0),
    Field("by_type", KIND_COUNTS, {}),
    Field("hours", HOUR_RING, skip=_no_head),
    Field("session_start", CLOCK),
    Field("daily_at", TIME),
    Field("recent_ids", BYTES, b""),
    Field("account_id", STR),
    Field("late", INT, 0),
    Field("error_total", INT, 0),
    Field("created", TIME, skip=lambda v, s: v == s.first_seen, fill=lambda _c, f: f.get("first_seen")),
    Field("policy", LEDGER, PolicyLedger(), skip=lambda v, _s: v.is_empty()),
    Field("applied", APPLIED, NOTHING),
    Field("profile_at", TIME),
)

# Version 1 (one flat table, before detectors had slices): read only, then split into slices.
FIELDS_V1: tuple[Field, ...] = (
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
MAGIC_V1 = bytes([0x81])


def encode_table(obj: Any, table: tuple[Field, ...], anchor: int) -> list[Plain]:
    """``[presence bits, each present field's value...]`` of ``obj`` (any object with the table's
    attributes): how the state's top level and every detector's slice are written."""
    out: list[Plain] = [0]
    present = 0
    values = attrgetter(*(f.name for f in table))(obj) if len(table) > 1 else (getattr(obj, table[0].name),)
    append = out.append
    for (bit, absent, skip, write), value in zip(_plan(table), values):
        if (value == absent) if skip is None else skip(value, obj):
            continue
        present |= bit
        append(value if write is None else write(value, anchor))
    out[0] = present
    return out


def decode_table(items: list[Plain], anchor: int, config: EngineView, table: tuple[Field, ...]) -> dict[str, Any]:
    """Inverse of :func:`encode_table`: the constructor keywords; ValueError on anything else."""
    present = checked_int(items[0])
    if not 0 <= present < 1 << len(table):
        raise ValueError("the state has fields this version does not know (written by a newer one?)")
    if len(items) != 1 + bin(present).count("1"):
        raise malformed("state (wrong number of fields)")
    decoded: dict[str, Any] = {}
    at = 1
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


def anchor_of(last_seen: float | None) -> int:
    """The whole second that times are written relative to (that of ``last_seen``, else 0)."""
    return int(last_seen) if last_seen is not None and -(2**53) < last_seen < 2**53 else 0


def encode_fields(state: Any, table: tuple[Field, ...] = FIELDS) -> bytes:
    """The binary form of ``state`` (any object with the table's attributes and ``last_seen``)."""
    anchor = anchor_of(state.last_seen)
    out = encode_table(state, table, anchor)
    out.insert(1, anchor)
    packed: bytes = msgpack.packb(out, use_bin_type=True, unicode_errors="surrogatepass")
    return MAGIC_BYTE + packed


def decode_fields(raw: bytes, config: EngineView, table: tuple[Field, ...] = FIELDS,
                  magic: bytes = b"") -> dict[str, Any]:
    """The constructor keywords of a state in the binary form (this version's or version 2's, which
    shares the table: the ledger's kind reads both); ValueError when ``raw`` is not one."""
    if raw[:1] not in ((magic,) if magic else _SAME_TABLE):
        raise ValueError(f"not a version {VERSION} binary state")
    items = msgpack.unpackb(memoryview(raw)[1:], raw=False, strict_map_key=True, unicode_errors="surrogatepass",
                            ext_hook=_no_extensions)
    if type(items) is not list or len(items) < 2:
        raise malformed("state")
    anchor = checked_int(items[1])
    return decode_table([items[0], *items[2:]], anchor, config, table)


def _no_extensions(code: int, _data: bytes) -> Any:
    raise ValueError(f"a MessagePack extension type ({code}) in a state")


def _plan(table: tuple[Field, ...]) -> tuple[tuple[int, Any, Any, Callable[[Any, int], Plain] | None], ...]:
    """Per field: its presence bit, what it is left out as, and how it is written (None: as it is)."""
    cached = _PLANS.get(id(table))
    if cached is None or cached[0] is not table:
        plan = tuple((1 << i, f.absent, f.skip, None if f.kind.out is as_is else f.kind.out)
                     for i, f in enumerate(table))
        _PLANS[id(table)] = cached = (table, plan)
    return cached[1]


def _reads(table: tuple[Field, ...]) -> tuple[tuple[int, str, Any, Any, type | None], ...]:
    """Per field: its presence bit, name, reader, default maker and plain type."""
    cached = _READS.get(id(table))
    if cached is None or cached[0] is not table:
        reads = tuple((1 << i, f.name, f.kind.back, f.fill, f.kind.plain) for i, f in enumerate(table))
        _READS[id(table)] = cached = (table, reads)
    return cached[1]


_PLANS: dict[int, tuple[tuple[Field, ...], Any]] = {}  # by the table's identity (tables live as long as the program)
_READS: dict[int, tuple[tuple[Field, ...], Any]] = {}
