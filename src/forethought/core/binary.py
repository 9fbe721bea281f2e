"""Byte-level primitives of the compact state codec: varints, exact numbers, times, strings, symbols.

Every value round trips exactly (a float comes back bit for bit, an int stays an int), and a
:class:`Reader` never trusts its input: each count or length is bounded by the bytes that are left,
a varint by ten bytes, so hostile bytes raise :class:`ValueError` in time and memory linear in
their length.

>>> w = Writer(anchor=1_790_000_000)
>>> w.int(-3); w.num(0.412); w.num(7); w.time(1_790_000_086.25); w.sym("error"); w.sym("E503"); w.sym("E503")
>>> raw = w.getvalue()
>>> len(raw)  # 1 + 3 + 1 + 3 + 1 + 6 (a new symbol) + 1 (a repeated one)
16
>>> r = Reader(raw, anchor=1_790_000_000)
>>> r.int(), r.num(), r.num(), r.time(), r.sym(), r.sym(), r.sym()
(-3, 0.412, 7, 1790000086.25, 'error', 'E503', 'E503')
>>> r.end()
>>> Reader(raw[:12], pos=9).sym()  # the new symbol, cut short
Traceback (most recent call last):
ValueError: truncated: a string runs past the end
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

_F64 = struct.Struct("<d")
_MAX_VARINT_BYTES = 10
_EXP_BIAS, _EXP_RAW = 20, 31  # decimal exponents -20 … +10; 31 marks a raw float64
_MAX_DIGITS = 15  # a decimal with more significant digits is stored raw (it would not be shorter)
_MAX_NESTING = 64  # JSON blobs (held trigger bodies) nest at most this deep

# Strings common to every state: the first symbol codes stand for them. APPEND ONLY (the index is
# on disk); a new entry makes older readers fail on states that use it (they raise ValueError).
STATIC_SYMBOLS: tuple[str, ...] = (
    "page_view", "click", "session_start", "session_end", "feature_used", "error", "usage",
    "info", "warning", "critical",
    "email", "in_app", "webhook", "cs_outreach", "sms", "push", "any",
    "silence", "decline", "error_burst", "usage_anomaly", "behaviour_anomaly", "feature_first_use", "daily",
    "treated", "holdout",
    "silence_dropoff", "activity_decline", "unusual_behaviour", "dropoff_risk_high", "long_inactivity",
    "onboarding_stalled", "key_feature_unused", "renewal_at_risk", "feature_welcome",
)
_STATIC_INDEX = {s: i for i, s in enumerate(STATIC_SYMBOLS)}


def _zigzag(v: int) -> int:
    return v << 1 if v >= 0 else ((-v) << 1) - 1


def _unzigzag(u: int) -> int:
    return u >> 1 if not u & 1 else -((u + 1) >> 1)


def _decimal(x: float) -> tuple[int, int] | None:
    """``(m, e)`` with ``x == m * 10**e`` read back exactly, from the shortest repr; None when too long.

    >>> _decimal(0.412), _decimal(1.5e-07), _decimal(1e22), _decimal(0.1 + 0.2)
    ((412, -3), (15, -8), None, None)
    """
    text = repr(x)
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("-")
    m, e = int(whole + frac), (int(exp) if exp else 0) - len(frac)
    while m and m % 10 == 0:
        m, e = m // 10, e + 1
    if len(digits.lstrip("0")) > _MAX_DIGITS or not -_EXP_BIAS <= e < _EXP_RAW - _EXP_BIAS:
        return None
    return m, e


class Writer:
    """Appends values to a byte buffer. Times are written relative to ``anchor`` (whole seconds)."""

    __slots__ = ("buf", "anchor", "symbols")

    def __init__(self, anchor: int = 0) -> None:
        self.buf = bytearray()
        self.anchor = anchor
        self.symbols: dict[str, int] = {}

    def getvalue(self) -> bytes:
        return bytes(self.buf)

    def uint(self, u: int) -> None:
        """An unsigned varint (7 bits a byte, low bits first)."""
        buf = self.buf
        while u > 0x7F:
            buf.append((u & 0x7F) | 0x80)
            u >>= 7
        buf.append(u)

    def int(self, v: int) -> None:
        """A signed int (zigzag varint: -1 → 1 byte, 63 → 1 byte, 64 → 2 bytes)."""
        self.uint(v << 1 if v >= 0 else ((-v) << 1) - 1)

    def num(self, x: float | int) -> None:
        """An int or a float, exactly and keeping its type: 2 tag bits, then whole / decimal / raw."""
        if isinstance(x, int):
            self.uint(_zigzag(int(x)) << 2)
        elif x == x and x.is_integer() and abs(x) < 2**53 and math.copysign(1.0, x) > 0:
            self.uint(_zigzag(int(x)) << 2 | 1)
        else:
            decimal = _decimal(x) if math.isfinite(x) and x != 0 else None
            if decimal is None:
                self.buf.append(3)
                self.buf += _F64.pack(x)
            else:
                self.uint((_zigzag(decimal[0]) << 5 | (decimal[1] + _EXP_BIAS)) << 2 | 2)

    def time(self, t: float, ref: int | None = None) -> None:
        """A POSIX time relative to ``ref`` (default the anchor): whole s, ms, µs, or a raw float64."""
        base = self.anchor if ref is None else ref
        if isinstance(t, int):  # whole seconds that came back from JSON as an int
            t = float(t)
        if t.is_integer() and abs(t) < 2**53:
            self.uint(_zigzag(int(t) - base) << 2)
            return
        if math.isfinite(t) and abs(t) < 2**42:
            ms = round(t * 1000)
            if ms / 1000 == t:
                self.uint(_zigzag(ms - base * 1000) << 2 | 1)
                return
            us = round(t * 1_000_000)
            if us / 1_000_000 == t:
                self.uint(_zigzag(us - base * 1_000_000) << 2 | 2)
                return
        self.buf.append(3)
        self.buf += _F64.pack(t)

    def bytes(self, data: bytes) -> None:
        self.uint(len(data))
        self.buf += data

    def str(self, s: str) -> None:
        self.bytes(s.encode("utf-8", "surrogatepass"))

    def sym(self, s: str) -> None:
        """A string that may repeat: a code for a well-known or already written one, else inline."""
        code = _STATIC_INDEX.get(s)
        if code is None:
            code = self.symbols.get(s)
        if code is not None:
            self.uint(code + 1)
            return
        self.symbols[s] = len(STATIC_SYMBOLS) + len(self.symbols)
        self.buf.append(0)
        self.str(s)

    def json(self, value: Any) -> None:
        """A JSON value (a held trigger body) as compact JSON text."""
        self.bytes(json.dumps(value, separators=(",", ":")).encode())


class Reader:
    """Reads what :class:`Writer` wrote; any inconsistency raises ValueError."""

    __slots__ = ("data", "pos", "anchor", "symbols")

    def __init__(self, data: bytes, pos: int = 0, anchor: int = 0) -> None:
        self.data, self.pos, self.anchor = data, pos, anchor
        self.symbols: list[str] = list(STATIC_SYMBOLS)

    def left(self) -> int:
        return len(self.data) - self.pos

    def end(self) -> None:
        """Raise unless every byte was read."""
        if self.pos != len(self.data):
            raise ValueError(f"{len(self.data) - self.pos} unexpected bytes after the value")

    def uint(self) -> int:
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise ValueError("truncated: a number runs past the end")
        b = data[pos]
        if b < 0x80:
            self.pos = pos + 1
            return b
        result, shift = b & 0x7F, 7
        for i in range(pos + 1, min(pos + _MAX_VARINT_BYTES, len(data))):
            b = data[i]
            result |= (b & 0x7F) << shift
            if b < 0x80:
                self.pos = i + 1
                return result
            shift += 7
        raise ValueError("truncated or overlong number")

    def int(self) -> int:
        return _unzigzag(self.uint())

    def count(self, each: int = 1) -> int:
        """A length or element count; at least ``each`` bytes per element must be left."""
        n = self.uint()
        if n * each > len(self.data) - self.pos:
            raise ValueError(f"a count of {n} does not fit in the {len(self.data) - self.pos} bytes left")
        return n

    def num(self) -> float | int:
        h = self.uint()
        tag, v = h & 3, h >> 2
        if tag == 0:
            return _unzigzag(v)
        if tag == 1:
            return float(_unzigzag(v))
        if tag == 2:
            m, e = _unzigzag(v >> 5), (v & 31) - _EXP_BIAS
            if e == _EXP_RAW - _EXP_BIAS:
                raise ValueError("bad decimal exponent")
            return m / 10**-e if e < 0 else float(m * 10**e)
        if v:
            raise ValueError("bad raw float tag")
        return self._f64()

    def _f64(self) -> float:
        if self.pos + 8 > len(self.data):
            raise ValueError("truncated: a float runs past the end")
        (x,) = _F64.unpack_from(self.data, self.pos)
        self.pos += 8
        if x != x:
            raise ValueError("NaN in a state")
        return float(x)

    def time(self, ref: int | None = None) -> float:
        base = self.anchor if ref is None else ref
        h = self.uint()
        tag, v = h & 3, _unzigzag(h >> 2)
        if tag == 0:
            return float(v + base)
        if tag == 1:
            return (v + base * 1000) / 1000
        if tag == 2:
            return (v + base * 1_000_000) / 1_000_000
        if v:
            raise ValueError("bad raw time tag")
        return self._f64()

    def bytes(self) -> bytes:
        n = self.uint()
        end = self.pos + n
        if end > len(self.data):
            raise ValueError("truncated: a string runs past the end")
        out = self.data[self.pos:end]
        self.pos = end
        return bytes(out)

    def str(self) -> str:
        return self.bytes().decode("utf-8", "surrogatepass")

    def sym(self) -> str:
        code = self.uint()
        if code == 0:
            s = self.str()
            self.symbols.append(s)
            return s
        if code > len(self.symbols):
            raise ValueError(f"unknown symbol {code - 1}")
        return self.symbols[code - 1]

    def json(self) -> Any:
        text = self.bytes()
        if text.count(b"[") + text.count(b"{") > _MAX_NESTING and _nesting(text) > _MAX_NESTING:
            raise ValueError("JSON nested too deeply")
        return json.loads(text)


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
