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
(True, 13)
>>> fields = decode_fields(raw, EngineConfig())  # the constructor's keywords
>>> fields["customer_id"], fields["last_seen"], fields["events"], fields["activity"].head
('c1', 1790000000.25, 3, -1)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from forethought.core.baselines import EwStats
from forethought.core.binary import Reader, Writer
from forethought.core.config import EngineConfig
from forethought.core.policy.ledger import Pending, PolicyLedger, Sent, Watch
from forethought.core.windows import BucketRing

VERSION = 1
MAGIC = 0x80 | VERSION
HOUR_BUCKETS = 24  # the hour ring's size (events per hour of the last day)


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


def _w_list(write: Callable[[Writer, Any], None]) -> Callable[[Writer, Any], None]:
    def w(out: Writer, values: list[Any]) -> None:
        out.uint(len(values))
        for v in values:
            write(out, v)
    return w


def _r_list(read: Callable[[Reader], Any]) -> Callable[[Reader, EngineConfig], list[Any]]:
    def r(src: Reader, _config: EngineConfig) -> list[Any]:
        return [read(src) for _ in range(src.count())]
    return r


def _w_times(out: Writer, times: list[float]) -> None:
    out.uint(len(times))
    ref = None
    for t in times:
        out.time(t, ref)
        ref = _ref(t)


def _r_times(src: Reader) -> list[float]:
    times, ref = [], None
    for _ in range(src.count()):
        t = src.time(ref)
        times.append(t)
        ref = _ref(t)
    return times


def _w_map(write: Callable[[Writer, Any], None]) -> Callable[[Writer, Any], None]:
    def w(out: Writer, mapping: dict[str, Any]) -> None:
        out.uint(len(mapping))
        for key, value in mapping.items():
            out.sym(key)
            write(out, value)
    return w


def _r_map(read: Callable[[Reader], Any]) -> Callable[[Reader, EngineConfig], dict[str, Any]]:
    def r(src: Reader, _config: EngineConfig) -> dict[str, Any]:
        return {src.sym(): read(src) for _ in range(src.count(2))}
    return r


def _w_ew(out: Writer, stats: EwStats) -> None:
    out.int(stats.n)
    out.num(stats.mean)
    out.num(stats.var)


def _r_ew(src: Reader, _config: EngineConfig) -> EwStats:
    return EwStats(src.int(), src.num(), src.num())


def _w_ring(out: Writer, ring: BucketRing) -> None:
    """Head, then the counts newest first up to the oldest non-zero: dense, or (age gap, count)
    pairs when most are zero."""
    size, counts = ring.size, ring.counts
    h = ring.head % size
    newest = counts[h::-1] + counts[:h:-1]
    while newest and not newest[-1]:
        newest.pop()
    filled = [(age, c) for age, c in enumerate(newest) if c]
    out.int(ring.head)
    if 2 * len(filled) < len(newest):
        out.uint(len(filled) << 1 | 1)
        last = -1
        for age, c in filled:
            out.uint(age - last - 1)
            out.num(c)
            last = age
        return
    out.uint(len(newest) << 1)
    for c in newest:
        out.num(c)


def _ring(size_of: Callable[[EngineConfig], int]) -> Kind:
    def read(src: Reader, config: EngineConfig) -> BucketRing:
        ring = BucketRing.empty(size_of(config))
        head, size, counts = src.int(), ring.size, ring.counts
        if head < 0:
            raise ValueError("a stored ring has no head")
        ring.head = head
        n = src.uint()
        sparse, n = n & 1, n >> 1
        if n > src.left():
            raise ValueError("a ring's count does not fit in the bytes left")
        age = -1
        for i in range(n):  # a ring written under a larger size keeps its newest buckets (as from_list)
            age = age + 1 + src.uint() if sparse else i
            c = float(src.num())
            if age < size:
                counts[(head - age) % size] = c
        return ring
    return Kind(_w_ring, read)


def _w_ledger(out: Writer, ledger: PolicyLedger) -> None:
    parts = (ledger.sent, ledger.episodes, ledger.pending, ledger.watch, ledger.recent)
    out.uint(sum(1 << i for i, part in enumerate(parts) if part))
    if ledger.sent:
        out.uint(len(ledger.sent))
        ref = None
        for s in ledger.sent:
            out.time(s.at, ref)
            out.sym(s.playbook)
            out.sym(s.channel)
            out.int(s.priority)
            ref = _ref(s.at)
    if ledger.episodes:
        out.bytes(ledger.episodes)
    if ledger.pending:
        out.uint(len(ledger.pending))
        for p in ledger.pending:
            out.time(p.release_at)
            out.sym(p.signal)
            out.json(p.trigger)
    if ledger.watch:
        out.uint(len(ledger.watch))
        for w in ledger.watch:
            out.sym(w.playbook)
            out.sym(w.group)
            out.time(w.since)
            out.time(w.until, _ref(w.since))
    if ledger.recent:
        out.uint(len(ledger.recent))
        for at, trigger in ledger.recent:
            out.time(at)
            out.json(trigger)


def _trigger(src: Reader) -> dict[str, Any]:
    body = src.json()
    if not isinstance(body, dict):
        raise ValueError("a held trigger is not a JSON object")
    return body


def _r_ledger(src: Reader, _config: EngineConfig) -> PolicyLedger:
    parts, ledger = src.uint(), PolicyLedger()
    if parts >> 5:
        raise ValueError("unknown policy ledger parts")
    if parts & 1:
        ref = None
        for _ in range(src.count(3)):
            at = src.time(ref)
            ledger.sent.append(Sent(at, src.sym(), src.sym(), src.int()))
            ref = _ref(at)
    if parts & 2:
        ledger.episodes = src.bytes()
    if parts & 4:
        ledger.pending = [Pending(src.time(), src.sym(), _trigger(src)) for _ in range(src.count(3))]
    if parts & 8:
        for _ in range(src.count(4)):
            playbook, group, since = src.sym(), src.sym(), src.time()
            ledger.watch.append(Watch(playbook, group, since, src.time(_ref(since))))
    if parts & 16:
        ledger.recent = [(src.time(), _trigger(src)) for _ in range(src.count(2))]
    return ledger


def _w_snapshot(out: Writer, text: str) -> None:
    """The model snapshot is base64 text: stored as its bytes when that gives the same text back."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = None
    if raw is not None and base64.b64encode(raw).decode() == text:
        out.uint(1)
        out.bytes(raw)
    else:
        out.uint(0)
        out.str(text)


def _r_snapshot(src: Reader, _config: EngineConfig) -> str:
    form = src.uint()
    if form > 1:
        raise ValueError("unknown snapshot form")
    return base64.b64encode(src.bytes()).decode() if form else src.str()


INT = Kind(Writer.int, lambda src, _c: src.int())
CLOCK = Kind(lambda out, v: out.int(int(v) - out.anchor), lambda src, _c: src.int() + src.anchor)  # whole seconds
NUM = Kind(Writer.num, lambda src, _c: src.num())
TIME = Kind(Writer.time, lambda src, _c: src.time())
STR = Kind(Writer.str, lambda src, _c: src.str())
BYTES = Kind(Writer.bytes, lambda src, _c: src.bytes())
INTS = Kind(_w_list(Writer.int), _r_list(Reader.int))
NUMS = Kind(_w_list(Writer.num), _r_list(Reader.num))
COUNTS = Kind(_w_map(Writer.int), _r_map(Reader.int))  # name → int
SERIES = Kind(_w_map(_w_list(Writer.num)), _r_map(lambda src: [src.num() for _ in range(src.count())]))
TIMES = Kind(_w_map(_w_times), _r_map(_r_times))  # name → times
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
    Field("long_gap", NUM, 0.0),
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
    Field("minute_usage", NUM, 0.0),
    Field("odd", INTS, []),
)


def encode_fields(state: Any) -> bytes:
    """The binary form of ``state`` (any object with the table's attributes)."""
    last = state.last_seen
    anchor = _ref(last) if last is not None else 0
    body = Writer(anchor)
    present = 0
    for i, f in enumerate(FIELDS):
        value = getattr(state, f.name)
        if not f.left_out(value, state):
            present |= 1 << i
            f.kind.write(body, value)
    head = Writer()
    head.buf.append(MAGIC)
    head.uint(present)
    head.int(anchor)
    return bytes(head.buf + body.buf)


def decode_fields(raw: bytes, config: EngineConfig) -> dict[str, Any]:
    """The constructor keywords of a state in the binary form; ValueError when ``raw`` is not one."""
    if not raw or raw[0] != MAGIC:
        raise ValueError(f"not a version {VERSION} binary state")
    src = Reader(raw, 1)
    present = src.uint()
    if present >> len(FIELDS):
        raise ValueError("the state has fields this version does not know (written by a newer one?)")
    src.anchor = src.int()
    decoded: dict[str, Any] = {}
    for i, f in enumerate(FIELDS):
        if present >> i & 1:
            decoded[f.name] = f.kind.read(src, config)
        elif f.fill is not None:
            decoded[f.name] = f.fill(config, decoded)
    src.end()
    return decoded
