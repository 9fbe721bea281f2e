"""The compact binary form of a customer state (the changelog value), and its field table.

Layout (docs/runtime/state-codec.md has the details)::

    0x81 | presence bits (varint) | anchor (varint, whole seconds) | each present field, in table order

The first byte is the format: ``0x80 | version`` for this binary form, ``{`` for the JSON dicts of
versions 2 and 3 that older workers wrote (``CustomerState.from_bytes`` still reads them). Bit ``i``
of the presence bits says that :data:`FIELDS` entry ``i`` differs from its default and follows;
times are stored relative to the anchor (the whole second of ``last_seen``).

**Versioning rule.** A new ``CustomerState`` field is one new line at the END of :data:`FIELDS`:
older encodings lack its bit and decode with the field's default, so no version bump. A field is
never removed or reordered (retire it: keep its line, stop setting it); changing how a field or a
primitive is written needs a new version byte and a reader for the old one. A bit beyond the table
(a newer writer) is refused with ValueError.

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

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import add, attrgetter, is_, sub
from typing import Any

from array import array
import sys

from forethought.core.baselines import EwStats
from forethought.core.binary import Reader, Writer, reading
from forethought.core.config import EngineConfig
from forethought.core.policy.ledger import Pending, PolicyLedger, Sent, Watch
from forethought.core.windows import BucketRing

VERSION = 1
MAGIC = 0x80 | VERSION
MAGIC_BYTE = bytes([MAGIC])
HOUR_BUCKETS = 24  # the hour ring's size (events per hour of the last day)
_BIG_ENDIAN = sys.byteorder == "big"  # ring counts are stored little-endian
_EXACT = float(2**53)  # floats below this hold whole numbers exactly
_FLIP = bytes.maketrans(b"\0\1", b"\1\0")


@dataclass(frozen=True, slots=True)
class Kind:
    """How one field's value is written and read."""

    write: Callable[[Writer, Any], None]
    read: Callable[[Reader, EngineConfig], Any]


@dataclass(frozen=True, slots=True)
class Field:
    """One table entry: left out when ``skip(value, state)``; when absent, the constructor's default,
    or ``fill(config, decoded_so_far)`` when it needs one computed."""

    name: str
    kind: Kind
    absent: Any = None
    skip: Callable[[Any, Any], bool] | None = None
    fill: Callable[[EngineConfig, dict[str, Any]], Any] | None = None

    def left_out(self, value: Any, state: Any) -> bool:
        return value == self.absent if self.skip is None else self.skip(value, state)


def _ref(t: float) -> int:
    """The whole second a chained time is written relative to (the same on both sides)."""
    return int(t) if -(2**53) < t < 2**53 else 0


# --- kinds -----------------------------------------------------------------------------------


def _w_nums(out: Writer, values: list[float | int]) -> None:
    """A list of ints and floats, each keeping its type: a byte per element says which."""
    kinds = bytes(map(is_, map(type, values), repeat(int)))
    out.ints.append(len(values))
    out.blobs.append(kinds)
    out.ints += compress(values, kinds)
    out.floats += compress(values, kinds.translate(_FLIP))


def _r_nums(src: Reader) -> list[float | int]:
    n = src.next_int()
    kinds = src.take(n)
    if kinds.translate(None, b"\0\1"):
        raise ValueError("bad number kinds")
    ints, floats = iter(src.ints(kinds.count(1))), iter(src.floats(n - kinds.count(1)))
    return [next(ints) if kind else next(floats) for kind in kinds]


def _w_ints(out: Writer, values: list[int]) -> None:
    out.ints.append(len(values))
    out.ints += values


def _r_ints(src: Reader, _config: EngineConfig) -> list[int]:
    return src.ints(src.next_int())


def _w_times(out: Writer, times: list[float]) -> None:
    """Times, each relative to the whole second of the one before (the first to the anchor)."""
    out.ints.append(len(times))
    ref = None
    for t in times:
        out.time(t, ref)
        ref = _ref(t)


def _r_times(src: Reader) -> list[float]:
    times, ref = [], None
    for _ in range(src.next_int()):
        t = src.time(ref)
        times.append(t)
        ref = _ref(t)
    return times


def _w_counts(out: Writer, mapping: dict[str, int]) -> None:
    """``{name: int}``: the names, then the ints."""
    out.ints.append(len(mapping))
    out.names(list(mapping))
    out.ints += mapping.values()


def _r_counts(src: Reader, _config: EngineConfig) -> dict[str, int]:
    n = src.next_int()
    names = src.names(n)
    return dict(zip(names, src.ints(n)))


def _w_series(out: Writer, mapping: dict[str, list[float | int]]) -> None:
    """``{name: [ints and floats]}``."""
    out.ints.append(len(mapping))
    out.names(list(mapping))
    for values in mapping.values():
        _w_nums(out, values)


def _r_series(src: Reader, _config: EngineConfig) -> dict[str, list[float | int]]:
    return {name: _r_nums(src) for name in src.names(src.next_int())}


_WHOLE_SECONDS, _EACH_TIME = 0, 1


def _w_timemap(out: Writer, mapping: dict[str, list[float]]) -> None:
    """``{name: [times]}``: whole seconds (what the engine keeps) as ints after the anchor, in bulk."""
    out.ints.append(len(mapping))
    out.names(list(mapping))
    values = list(mapping.values())
    flat = list(map(float, chain.from_iterable(values)))
    if all(map(float.is_integer, flat)) and all(map(_EXACT.__gt__, map(abs, flat))):
        out.ints.append(_WHOLE_SECONDS)
        out.ints += map(len, values)
        out.ints += map(sub, map(int, flat), repeat(out.anchor))
        return
    out.ints.append(_EACH_TIME)
    for times in values:
        _w_times(out, times)


def _r_timemap(src: Reader, _config: EngineConfig) -> dict[str, list[float]]:
    names = src.names(src.next_int())
    form = src.next_int()
    if form == _EACH_TIME:
        return {name: _r_times(src) for name in names}
    if form != _WHOLE_SECONDS:
        raise ValueError("unknown time map form")
    lengths = src.ints(len(names))
    if min(lengths, default=0) < 0:
        raise ValueError("a negative length")
    flat = list(map(float, map(add, src.ints(sum(lengths)), repeat(src.anchor))))
    out, pos = {}, 0
    for name, k in zip(names, lengths):
        out[name] = flat[pos:pos + k]
        pos += k
    return out


def _w_ew(out: Writer, stats: EwStats) -> None:
    out.ints.append(stats.n)
    out.floats += (stats.mean, stats.var)


def _r_ew(src: Reader, _config: EngineConfig) -> EwStats:
    return EwStats(src.next_int(), src.next_float(), src.next_float())


_U8, _U16, _F64 = 0, 1, 2


def _w_ring(out: Writer, ring: BucketRing) -> None:
    """Head, then the counts newest first up to the oldest non-zero: one byte each when they are
    whole and below 256, two below 65,536, else (age, float64) pairs of the non-zero ones."""
    size, counts, head = ring.size, ring.counts, ring.head
    h = head % size
    newest = counts[h::-1] + counts[:h:-1]
    out.ints.append(head)
    newest = newest[:(len(array("d", newest).tobytes().rstrip(b"\0")) + 7) // 8]  # trailing zeros off, in C
    try:
        small = bytes(map(int, newest))
        if list(small) == newest:
            small = small.rstrip(b"\0")
            out.ints.append(len(small) << 2 | _U8)
            out.blobs.append(small)
            return
        wide = array("H", map(int, newest))
        if wide.tolist() == newest:
            if _BIG_ENDIAN:
                wide.byteswap()
            out.ints.append(len(wide) << 2 | _U16)
            out.blobs.append(wide.tobytes())
            return
    except (ValueError, OverflowError):  # negative, too large, or not a number int() takes
        pass
    filled = [(age, c) for age, c in enumerate(newest) if c]  # fractional counts: (age, float64) pairs
    out.ints.append(len(filled) << 2 | _F64)
    out.ints += [age for age, _ in filled]
    out.floats += [c for _, c in filled]


def _ring(size_of: Callable[[EngineConfig], int]) -> Kind:
    def read(src: Reader, config: EngineConfig) -> BucketRing:
        size, head, form = size_of(config), src.next_int(), src.next_int()
        mode, n = form & 3, form >> 2
        if head < 0 or n < 0:
            raise ValueError("a stored ring has no head")
        if mode == _U8:
            full = list(map(float, src.take(n)))
        elif mode == _U16:
            wide = array("H")
            wide.frombytes(src.take(2 * n))
            if _BIG_ENDIAN:
                wide.byteswap()
            full = list(map(float, wide))
        elif mode == _F64:
            ages = src.ints(n)
            if min(ages, default=0) < 0 or max(ages, default=0) >= 1 << 24:
                raise ValueError("a ring bucket out of range")
            full = [0.0] * min(max(ages, default=-1) + 1, size)
            for age, c in zip(ages, src.floats(n)):
                if age < size:
                    full[age] = c
        else:
            raise ValueError("unknown ring form")
        # newest first, padded (or cut, when written under a larger size: from_list does the same)
        full = full[:size] + [0.0] * (size - len(full)) if len(full) != size else full
        h = head % size
        return BucketRing(size, head, full[h::-1] + full[:h:-1])
    return Kind(_w_ring, read)


def _w_ledger(out: Writer, ledger: PolicyLedger) -> None:
    """The policy ledger: which of its five parts follow, then each part."""
    parts = (ledger.sent, ledger.episodes, ledger.pending, ledger.watch, ledger.recent)
    ints = out.ints
    ints.append(sum(1 << i for i, part in enumerate(parts) if part))
    if ledger.sent:
        ints.append(len(ledger.sent))
        ref = None
        for s in ledger.sent:
            out.time(s.at, ref)
            out.sym(s.playbook)
            out.sym(s.channel)
            ints.append(s.priority)
            ref = _ref(s.at)
    if ledger.episodes:
        out.bytes(ledger.episodes)
    if ledger.pending:
        ints.append(len(ledger.pending))
        for p in ledger.pending:
            out.time(p.release_at)
            out.sym(p.signal)
            out.json(p.trigger)
    if ledger.watch:
        ints.append(len(ledger.watch))
        for w in ledger.watch:
            out.sym(w.playbook)
            out.sym(w.group)
            out.time(w.since)
            out.time(w.until, _ref(w.since))
    if ledger.recent:
        ints.append(len(ledger.recent))
        for at, trigger in ledger.recent:
            out.time(at)
            out.json(trigger)


def _trigger(src: Reader) -> dict[str, Any]:
    body = src.json()
    if not isinstance(body, dict):
        raise ValueError("a held trigger is not a JSON object")
    return body


def _r_ledger(src: Reader, _config: EngineConfig) -> PolicyLedger:
    parts, ledger = src.next_int(), PolicyLedger()
    if not 0 <= parts < 32:
        raise ValueError("unknown policy ledger parts")
    if parts & 1:
        ref = None
        for _ in range(src.next_int()):
            at = src.time(ref)
            ledger.sent.append(Sent(at, src.sym(), src.sym(), src.next_int()))
            ref = _ref(at)
    if parts & 2:
        ledger.episodes = src.bytes()
    if parts & 4:
        ledger.pending = [Pending(src.time(), src.sym(), _trigger(src)) for _ in range(src.next_int())]
    if parts & 8:
        for _ in range(src.next_int()):
            playbook, group, since = src.sym(), src.sym(), src.time()
            ledger.watch.append(Watch(playbook, group, since, src.time(_ref(since))))
    if parts & 16:
        ledger.recent = [(src.time(), _trigger(src)) for _ in range(src.next_int())]
    return ledger


def _w_snapshot(out: Writer, text: str) -> None:
    """The model snapshot is base64 text: stored as its bytes when that gives the same text back."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = None
    if raw is not None and base64.b64encode(raw).decode() == text:
        out.ints.append(1)
        out.bytes(raw)
    else:
        out.ints.append(0)
        out.str(text)


def _r_snapshot(src: Reader, _config: EngineConfig) -> str:
    form = src.next_int()
    if form not in (0, 1):
        raise ValueError("unknown snapshot form")
    return base64.b64encode(src.bytes()).decode() if form else src.str()


INT = Kind(Writer.int, lambda src, _c: src.next_int())
CLOCK = Kind(lambda out, v: out.ints.append(int(v) - out.anchor), lambda src, _c: src.next_int() + src.anchor)  # whole s
FLOAT = Kind(Writer.float, lambda src, _c: src.next_float())
TIME = Kind(Writer.time, lambda src, _c: src.time())
STR = Kind(Writer.str, lambda src, _c: src.str())
BYTES = Kind(Writer.bytes, lambda src, _c: src.bytes())
INTS = Kind(_w_ints, _r_ints)
NUMS = Kind(_w_nums, lambda src, _c: _r_nums(src))  # ints and floats
COUNTS = Kind(_w_counts, _r_counts)  # name → int
SERIES = Kind(_w_series, _r_series)  # name → ints and floats
TIMES = Kind(_w_timemap, _r_timemap)  # name → times
EW = Kind(_w_ew, _r_ew)
RING = _ring(lambda config: config.ring_buckets)
HOUR_RING = _ring(lambda _config: HOUR_BUCKETS)
LEDGER = Kind(_w_ledger, _r_ledger)
SNAPSHOT = Kind(_w_snapshot, _r_snapshot)


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
    Field("by_type", COUNTS, {}),
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


_VALUES = attrgetter(*(f.name for f in FIELDS))
_PLAN = tuple((1 << i, f.absent, f.skip, f.kind.write) for i, f in enumerate(FIELDS))
_READ = tuple((1 << i, f.name, f.kind.read, f.fill) for i, f in enumerate(FIELDS))


def encode_fields(state: Any) -> bytes:
    """The binary form of ``state`` (any object with the table's attributes)."""
    last = state.last_seen
    anchor = _ref(last) if last is not None else 0
    out = Writer(anchor)
    out.ints += (0, anchor)  # the presence bits are filled in below
    present = 0
    for (bit, absent, skip, write), value in zip(_PLAN, _VALUES(state)):
        if (value == absent) if skip is None else skip(value, state):
            continue
        present |= bit
        write(out, value)
    out.ints[0] = present
    return MAGIC_BYTE + out.getvalue()


def decode_fields(raw: bytes, config: EngineConfig) -> dict[str, Any]:
    """The constructor keywords of a state in the binary form; ValueError when ``raw`` is not one."""
    if raw[:1] != MAGIC_BYTE:
        raise ValueError(f"not a version {VERSION} binary state")

    def decode(src: Reader) -> dict[str, Any]:
        present = src.next_int()
        if not 0 <= present < 1 << len(FIELDS):
            raise ValueError("the state has fields this version does not know (written by a newer one?)")
        src.anchor = src.next_int()
        decoded: dict[str, Any] = {}
        for bit, name, read, fill in _READ:
            if present & bit:
                decoded[name] = read(src, config)
            elif fill is not None:
                decoded[name] = fill(config, decoded)
        return decoded

    return reading(decode, raw, 1)
