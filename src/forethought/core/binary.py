"""Byte-level primitives of the compact state codec: three streams written and read in bulk.

A :class:`Writer` collects a value's parts into three streams: signed ints (each 1, 2, 4 or 8
bytes, its width in 2 bits), floats (float64, bit-exact) and blobs (strings and raw bytes, whose
lengths go to the int stream). Each stream is packed by one ``struct`` call at the end, so per
value the codec does little more than a list append: that keeps this pure-Python codec faster
than building a dict for a C JSON encoder.

Encoded: ``varint(#ints) | varint(#floats) | int widths (4 a byte) | ints | float64s | blobs``.

A :class:`Reader` never trusts its input: streams are unpacked within the bytes there are (every
count is checked against what is left before anything is allocated), every later read takes from
a stream already in memory, and running out or leaving something unread raises
:class:`ValueError`: hostile bytes cost time and memory linear in their length.

>>> w = Writer(anchor=1_790_000_000)
>>> w.int(-3); w.float(0.412); w.time(1_790_000_086.25); w.sym("error"); w.sym("E503"); w.sym("E503")
>>> raw = w.getvalue()
>>> len(raw)  # counts 2, widths 2, ints 1 + 4 + 1 + 1 + 1 + 1, a float 8, a blob 4 (E503)
25
>>> r = Reader(raw, 0, anchor=1_790_000_000)
>>> r.int(), r.float(), r.time(), r.sym(), r.sym(), r.sym()
(-3, 0.412, 1790000086.25, 'error', 'E503', 'E503')
>>> r.end()
>>> cut = Reader(raw[:-1], 0, anchor=1_790_000_000)  # the last byte of "E503" missing
>>> cut.int(), cut.float(), cut.time(), cut.sym()
(-3, 0.412, 1790000086.25, 'error')
>>> cut.sym()
Traceback (most recent call last):
ValueError: truncated: a string runs past the end
"""

from __future__ import annotations

import json
import math
import struct
import sys
from array import array
from itertools import islice
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_MAX_VARINT_BYTES = 10
_MAX_NESTING = 64  # JSON blobs (held trigger bodies) nest at most this deep

# Strings common to every state: the first symbol codes stand for them. APPEND ONLY (the index is
# on disk); a new entry makes older readers refuse states that use it (ValueError).
STATIC_SYMBOLS: tuple[str, ...] = (
    "page_view", "click", "session_start", "session_end", "feature_used", "error", "usage",
    "info", "warning", "critical",
    "email", "in_app", "webhook", "cs_outreach", "sms", "push", "any",
    "silence", "decline", "error_burst", "usage_anomaly", "behaviour_anomaly", "feature_first_use", "daily",
    "treated", "holdout",
    "silence_dropoff", "activity_decline", "unusual_behaviour", "dropoff_risk_high", "long_inactivity",
    "onboarding_stalled", "key_feature_unused", "renewal_at_risk", "feature_welcome",
)
_STATIC_INDEX = {s: i + 1 for i, s in enumerate(STATIC_SYMBOLS)}  # symbol code 0: a new string follows
_STATIC_BY_CODE = {i: s for s, i in _STATIC_INDEX.items()}
_NAMES_CODED, _NAMES_JOINED, _NAMES_EACH = 0, 1, 2


_WIDTHS = "bhiq"  # int8, int16, int32, int64
_LAYOUT = bytes.maketrans(b"\0\1\2\3", _WIDTHS.encode())
_FORMAT4 = tuple("".join(_WIDTHS[(byte >> shift) & 3] for shift in (0, 2, 4, 6)) for byte in range(256))
# two widths (bytes w0, w1 read as one little-endian uint16) → w0 | w1 << 2; then two of those → one byte
_PAIRS = bytes((i & 3) | (i >> 8 & 3) << 2 for i in range(0x304))
_QUADS = bytes((i & 15) | (i >> 8 & 15) << 4 for i in range(0xF10))
_BIG_ENDIAN = sys.byteorder == "big"


def _uint16s(data: bytes) -> array[int]:
    pairs = array("H", data + b"\0" * (len(data) & 1))
    if _BIG_ENDIAN:
        pairs.byteswap()
    return pairs


def pack_ints(values: list[int]) -> bytes:
    """Signed ints, each in the narrowest of 1, 2, 4 or 8 bytes, after their widths (2 bits each).

    >>> pack_ints([1, -200, 70_000, 2**40]).hex()
    'e40138ff701101000000000000010000'
    """
    widths = bytes([0 if -128 <= v < 128 else 1 if -32768 <= v < 32768 else 2 if -2147483648 <= v < 2147483648
                    else 3 for v in values])
    quads = bytes(map(_QUADS.__getitem__, _uint16s(bytes(map(_PAIRS.__getitem__, _uint16s(widths))))))
    try:
        return quads[:(len(values) + 3) // 4] + struct.pack("<" + widths.translate(_LAYOUT).decode(), *values)
    except struct.error as error:
        raise ValueError(f"a number in the state is out of range: {error}") from None


def unpack_ints(data: bytes, pos: int, n: int) -> tuple[tuple[int, ...], int]:
    """``n`` ints packed by :func:`pack_ints` at ``data[pos]``, and the position after them."""
    head = (n + 3) // 4
    if not 0 <= head <= len(data) - pos:
        raise ValueError("truncated: the numbers run past the end")
    layout = struct.Struct("<" + "".join(map(_FORMAT4.__getitem__, data[pos:pos + head]))[:n])
    pos += head
    if layout.size > len(data) - pos:
        raise ValueError("truncated: the numbers run past the end")
    return layout.unpack_from(data, pos), pos + layout.size


def varints(values: list[int]) -> bytes:
    """Signed ints as zigzag varints.

    >>> varints([0, -1, 1, 63, 64, -300]).hex()
    '0001027e8001d704'
    """
    out = bytearray()
    append = out.append
    for v in values:
        u = v << 1 if v >= 0 else ((-v) << 1) - 1
        while u > 0x7F:
            append((u & 0x7F) | 0x80)
            u >>= 7
        append(u)
    return bytes(out)


def read_varints(data: bytes, start: int, end: int) -> list[int]:
    """The signed ints in ``data[start:end]`` (inverse of :func:`varints`); ValueError when malformed."""
    out: list[int] = []
    append = out.append
    pos = start
    try:
        while pos < end:
            b = data[pos]
            pos += 1
            if b < 0x80:
                append(b >> 1 if not b & 1 else -((b + 1) >> 1))
                continue
            u, shift = b & 0x7F, 7
            while True:
                b = data[pos]
                pos += 1
                u |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
                if shift >= 7 * _MAX_VARINT_BYTES:
                    raise ValueError("an overlong number")
            append(u >> 1 if not u & 1 else -((u + 1) >> 1))
    except IndexError:
        raise ValueError("truncated: a number runs past the end") from None
    if pos != end:
        raise ValueError("truncated: a number runs past the end")
    return out


class Writer:
    """Collects values into the three streams. Times are written relative to ``anchor`` (whole seconds)."""

    __slots__ = ("ints", "floats", "blobs", "anchor", "symbols")

    def __init__(self, anchor: int = 0) -> None:
        self.ints: list[int] = []
        self.floats: list[float] = []
        self.blobs: list[bytes] = []
        self.anchor = anchor
        self.symbols: dict[str, int] = {}

    def getvalue(self) -> bytes:
        n = len(self.floats)
        return b"".join((varints([len(self.ints), n]), pack_ints(self.ints), struct.pack(f"<{n}d", *self.floats),
                         *self.blobs))

    def int(self, v: int) -> None:
        self.ints.append(v)

    def float(self, x: float) -> None:
        self.floats.append(x)

    def time(self, t: float, ref: int | None = None) -> None:
        """A POSIX time relative to ``ref`` (default the anchor), exactly: in whole seconds,
        milliseconds or microseconds when one of them gives ``t`` back, else a float64."""
        base = self.anchor if ref is None else ref
        if type(t) is not float:  # whole seconds that came back from old JSON as an int
            t = float(t)
        if t.is_integer() and -(2**53) < t < 2**53 and (t or math.copysign(1.0, t) > 0):  # (-0.0 is raw)
            self.ints.append((int(t) - base) << 2)
            return
        if -(2**42) < t < 2**42 and t:
            ms = round(t * 1000)
            if ms / 1000 == t:
                self.ints.append((ms - base * 1000) << 2 | 1)
                return
            us = round(t * 1_000_000)
            if us / 1_000_000 == t:
                self.ints.append((us - base * 1_000_000) << 2 | 2)
                return
        self.ints.append(3)
        self.floats.append(t)

    def bytes(self, data: bytes) -> None:
        self.ints.append(len(data))
        self.blobs.append(data)

    def str(self, s: str) -> None:
        self.bytes(s.encode("utf-8", "surrogatepass"))

    def sym(self, s: str) -> None:
        """A string that may repeat: a code for a well-known or already written one, else inline."""
        code = _STATIC_INDEX.get(s) or self.symbols.get(s)
        if code is not None:
            self.ints.append(code)
            return
        self.symbols[s] = len(STATIC_SYMBOLS) + 1 + len(self.symbols)
        self.ints.append(0)
        self.str(s)

    def names(self, keys: list[str]) -> None:
        """Several strings at once: as symbol codes when all are well known, else joined by NUL."""
        codes = list(map(_STATIC_INDEX.get, keys))
        if None not in codes:
            self.ints.append(_NAMES_CODED)
            self.ints += codes  # type: ignore[arg-type]
            return
        text = "\0".join(keys)
        if text.count("\0") == len(keys) - 1:
            self.ints.append(_NAMES_JOINED)
            self.str(text)
            return
        self.ints.append(_NAMES_EACH)
        for key in keys:
            self.str(key)

    def json(self, value: Any) -> None:
        """A JSON value (a held trigger body) as compact JSON text."""
        self.bytes(json.dumps(value, separators=(",", ":")).encode())


class Reader:
    """Reads what :class:`Writer` wrote, starting at ``data[start]``; inconsistencies raise ValueError.

    ``next_int`` and ``next_float`` take the next number of each stream (hot paths call them
    directly); they raise StopIteration when a stream runs out, which :func:`reading` turns
    into ValueError like every other inconsistency.
    """

    __slots__ = ("int_stream", "float_stream", "next_int", "next_float", "data", "pos", "anchor", "symbols")

    def __init__(self, data: bytes, start: int, anchor: int = 0) -> None:
        end = _varint_end(data, _varint_end(data, start))
        count, n = read_varints(data, start, end)
        if not 0 <= count <= len(data) - end or not 0 <= n * 8 <= len(data) - end:
            raise ValueError("truncated: the numbers run past the end")
        ints, end = unpack_ints(data, end, count)
        if n * 8 > len(data) - end:
            raise ValueError("truncated: the floats run past the end")
        floats = struct.unpack_from(f"<{n}d", data, end)
        if any(map(math.isnan, floats)):
            raise ValueError("NaN in a state")
        self.int_stream, self.float_stream = iter(ints), iter(floats)
        self.next_int: Callable[[], int] = self.int_stream.__next__
        self.next_float: Callable[[], float] = self.float_stream.__next__
        self.data, self.pos, self.anchor = data, end + 8 * n, anchor
        self.symbols: list[str] = ["", *STATIC_SYMBOLS]

    def end(self) -> None:
        """Raise unless every number, float and byte was read."""
        for take in (self.next_int, self.next_float):
            try:
                take()
            except StopIteration:
                continue
            raise ValueError("unexpected data after the value")
        if self.pos != len(self.data):
            raise ValueError("unexpected bytes after the value")

    def int(self) -> int:
        return self.next_int()

    def float(self) -> float:
        return self.next_float()

    def ints(self, n: int) -> list[int]:
        """The next ``n`` ints."""
        values = list(islice(self.int_stream, n))
        if len(values) != n:
            raise ValueError("truncated: too few numbers")
        return values

    def floats(self, n: int) -> list[float]:
        """The next ``n`` floats."""
        values = list(islice(self.float_stream, n))
        if len(values) != n:
            raise ValueError("truncated: too few floats")
        return values

    def names(self, n: int) -> list[str]:
        """``n`` strings written by :meth:`Writer.names`."""
        form = self.next_int()
        if form == _NAMES_CODED:
            return list(map(_STATIC_BY_CODE.__getitem__, self.ints(n)))
        if form == _NAMES_JOINED:
            names = self.str().split("\0")
            if len(names) != n:
                raise ValueError("a name list of the wrong length")
            return names
        if form == _NAMES_EACH:
            return [self.str() for _ in range(n)]
        raise ValueError("unknown name list form")

    def time(self, ref: int | None = None) -> float:
        v = self.next_int()
        tag, delta = v & 3, v >> 2
        if tag == 0:
            return float(delta + (self.anchor if ref is None else ref))
        if tag == 1:
            return (delta + (self.anchor if ref is None else ref) * 1000) / 1000
        if tag == 2:
            return (delta + (self.anchor if ref is None else ref) * 1_000_000) / 1_000_000
        if delta:
            raise ValueError("bad time tag")
        return self.next_float()

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes of the blob stream."""
        pos = self.pos
        if not 0 <= n <= len(self.data) - pos:
            raise ValueError("truncated: a string runs past the end")
        self.pos = pos + n
        return bytes(self.data[pos:pos + n])

    def bytes(self) -> bytes:
        return self.take(self.next_int())

    def str(self) -> str:
        return self.take(self.next_int()).decode("utf-8", "surrogatepass")

    def sym(self) -> str:
        code = self.next_int()
        if code == 0:
            s = self.str()
            self.symbols.append(s)
            return s
        if not 0 < code < len(self.symbols):
            raise ValueError(f"unknown symbol {code}")
        return self.symbols[code]

    def json(self) -> Any:
        text = self.bytes()
        if text.count(b"[") + text.count(b"{") > _MAX_NESTING and _nesting(text) > _MAX_NESTING:
            raise ValueError("JSON nested too deeply")
        return json.loads(text)


def reading(decode: Callable[[Reader], T], data: bytes, start: int) -> T:
    """``decode(Reader(data, start))``, then check that nothing is left; a stream that runs out
    (StopIteration) becomes ValueError.

    >>> one = varints([1, 0]) + pack_ints([7])  # one int, no floats
    >>> reading(lambda src: src.int(), one, 0)
    7
    >>> reading(lambda src: (src.int(), src.int()), one, 0)
    Traceback (most recent call last):
    ValueError: truncated: a stream ran out
    """
    src = Reader(data, start)
    try:
        value = decode(src)
        src.end()
    except StopIteration:
        raise ValueError("truncated: a stream ran out") from None
    except (KeyError, IndexError) as error:  # an unknown symbol code
        raise ValueError(f"unknown code {error}") from None
    return value


def _varint_end(data: bytes, pos: int) -> int:
    """The index after the varint at ``pos`` (bounded: at most ten bytes)."""
    for i in range(pos, min(pos + _MAX_VARINT_BYTES, len(data))):
        if data[i] < 0x80:
            return i + 1
    raise ValueError("truncated or overlong number")


def _nesting(text: bytes) -> int:
    """The deepest bracket nesting in JSON text (brackets inside strings count too: an upper bound)."""
    depth = deepest = 0
    for c in text:
        if c in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in b"]}":
            depth -= 1
    return deepest
