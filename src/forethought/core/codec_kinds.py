"""The value kinds of the state codec (:mod:`forethought.core.state_codec`): how each kind of
customer-state field becomes a MessagePack value and back, checking on the way back everything
it gets (types, ranges, lengths) and raising ValueError on anything else.

>>> from forethought.core.config import EngineConfig
>>> TIME.out(1_790_000_000.25, 1_790_000_000), TIME.back(1001, 1_790_000_000, EngineConfig())
(1001, 1790000000.25)
>>> INTS.back(["1"], 0, EngineConfig())
Traceback (most recent call last):
ValueError: a stored list is malformed
"""

from __future__ import annotations

import base64
import binascii
import math
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import add
from typing import Any

from forethought.core.baselines import EwStats
from forethought.core.views import EngineView
from forethought.core.windows import BucketRing

HOUR_BUCKETS = 24  # the hour ring's size (events per hour of the last day)
KINDS = ("page_view", "click", "session_start", "session_end", "feature_used", "error", "usage")
SEVERITIES = ("info", "warning", "error", "critical")  # an error event's; stored order: append only
_BIG_ENDIAN = sys.byteorder == "big"  # ring counts are stored little-endian
_NUMBER = {int, float}
_EXACT = float(2**53)  # floats below this hold whole numbers exactly

Plain = Any  # what MessagePack carries: None, int, float, str, bytes, lists and str-keyed dicts of those


@dataclass(frozen=True, slots=True)
class Kind:
    """How one field's value becomes a MessagePack value (``out``) and back (``back``, which
    checks what it gets and raises ValueError)."""

    out: Callable[[Any, int], Plain]
    back: Callable[[Plain, int, EngineView], Any]
    plain: type | None = None  # a value of this type is stored as it is (the codec checks only the type)



# --- checks ----------------------------------------------------------------------------------


def malformed(what: str) -> ValueError:
    return ValueError(f"a stored {what} is malformed")


def checked_int(v: Plain) -> int:
    if type(v) is not int:
        raise malformed("number")
    return v


def _float(v: Plain) -> float:
    if type(v) is not float or v != v:
        raise malformed("float")
    return v


def _str(v: Plain) -> str:
    if type(v) is not str:
        raise malformed("string")
    return v


def _bytes(v: Plain) -> bytes:
    if type(v) is not bytes:
        raise malformed("byte string")
    return v


def _list(v: Plain, types: set[type] | None = None) -> list[Any]:
    if type(v) is not list or (types is not None and not set(map(type, v)) <= types):
        raise malformed("list")
    if types is not None and float in types and any(map(math.isnan, v)):
        raise malformed("float")
    return v


def checked_map(v: Plain) -> dict[str, Any]:
    if type(v) is not dict or not set(map(type, v)) <= {str}:
        raise malformed("map")
    return v


# --- times -----------------------------------------------------------------------------------


def time_out(t: float, anchor: int) -> int | float:
    """A POSIX time as an int (``delta << 2 | unit``: whole s, ms or µs after ``anchor``) when
    that gives ``t`` back exactly, else the float itself.

    >>> [time_out(t, 1_790_000_000) for t in (1_790_000_060.0, 1_790_000_000.25, 1_790_000_000.123456)]
    [240, 1001, 493826]
    >>> time_out(1_790_000_000.1234567, 1_790_000_000)
    1790000000.1234567
    """
    if type(t) is not float:  # whole seconds that came back from old JSON as an int
        t = float(t)
    if t.is_integer() and -(2**53) < t < 2**53 and (t or math.copysign(1.0, t) > 0):  # (-0.0 stays a float)
        return (int(t) - anchor) << 2
    if -(2**42) < t < 2**42 and t:
        ms = round(t * 1000)
        if ms / 1000 == t:
            return (ms - anchor * 1000) << 2 | 1
        us = round(t * 1_000_000)
        if us / 1_000_000 == t:
            return (us - anchor * 1_000_000) << 2 | 2
    return t


def time_back(v: Plain, anchor: int) -> float:
    """Inverse of :func:`time_out`."""
    if type(v) is float:
        return _float(v)
    tagged = checked_int(v)
    tag, delta = tagged & 3, tagged >> 2
    if tag == 0:
        return float(delta + anchor)
    if tag == 1:
        return (delta + anchor * 1000) / 1000
    if tag == 2:
        return (delta + anchor * 1_000_000) / 1_000_000
    raise malformed("time")


def _times_out(times: list[float], anchor: int) -> list[int | float]:
    return [time_out(t, anchor) for t in times]


def _times_back(v: Plain, anchor: int) -> list[float]:
    return [time_back(t, anchor) for t in _list(v)]


# --- short decimals --------------------------------------------------------------------------


_POWERS: tuple[int, ...] = tuple(10**i for i in range(10))


def decimal_out(x: float, _anchor: int = 0) -> int | float:
    """``x`` as the int ``k << 4 | d`` when ``k / 10**d`` (``d`` ≤ 9 places) gives it back exactly,
    else the float itself: the baselines keep seven significant digits, which then take 5 bytes
    instead of 9 (small ones 1–3).

    >>> [decimal_out(x) for x in (0.16, 1.914233, -2.5, 18.0)]
    [258, 30627734, -399, 288]
    >>> decimal_out(0.1 + 0.2), decimal_out(-0.0)  # not a short decimal; a negative zero stays itself
    (0.30000000000000004, -0.0)
    >>> all(decimal_back(decimal_out(x)) == x for x in (0.16, 1.914233, -2.5, 18.0))
    True
    """
    if type(x) is not float:
        x = float(x)
    text = repr(x)
    if len(text) > 13 or "e" in text or "n" in text or (x == 0 and text[0] == "-"):  # (inf, nan, -0.0)
        return x
    whole, _, fraction = text.partition(".")
    places = 0 if fraction == "0" else len(fraction)
    k = int(whole + fraction) if places else int(whole)
    if places > 9 or k / _POWERS[places] != x:
        return x
    return k << 4 | places


def decimal_back(v: Plain) -> float:
    """Inverse of :func:`decimal_out`; ValueError on anything else (NaN included)."""
    if type(v) is float:
        return _float(v)
    tagged = checked_int(v)
    places = tagged & 15
    if places > 9:
        raise malformed("decimal")
    return (tagged >> 4) / _POWERS[places]


# --- kinds -----------------------------------------------------------------------------------


def _ring_out(ring: BucketRing, _anchor: int) -> Plain:
    """``[head, counts]``: the counts newest first up to the oldest non-zero, one byte each when
    whole and below 256 (bytes), two below 65,536 (``[bytes]``), else ``[[age...], [count...]]``."""
    size, counts, head = ring.size, ring.counts, ring.head
    h = head % size
    newest = counts[h::-1] + counts[:h:-1]
    newest = newest[:(len(array("d", newest).tobytes().rstrip(b"\0")) + 7) // 8]  # trailing zeros off, in C
    try:
        small = bytes(map(int, newest))
        if list(small) == newest:
            return [head, small]
        wide = array("H", map(int, newest))
        if wide.tolist() == newest:
            if _BIG_ENDIAN:
                wide.byteswap()
            return [head, [wide.tobytes()]]
    except (ValueError, OverflowError):  # negative, too large, or not a number int() takes
        pass
    filled = [(age, c) for age, c in enumerate(newest) if c]
    return [head, [[age for age, _ in filled], [c for _, c in filled]]]


def _ring(size_of: Callable[[EngineView], int]) -> Kind:
    def back(v: Plain, _anchor: int, config: EngineView) -> BucketRing:
        size = size_of(config)
        head, counts = _list(v)
        if checked_int(head) < 0:
            raise malformed("ring")
        if type(counts) is bytes:
            newest = list(map(float, counts[:size]))
        else:
            newest = _wide_counts(_list(counts), size)
        # newest first → slots head, head - 1, …; a ring written under a larger size keeps its
        # newest buckets (as from_list does)
        full, n, h = [0.0] * size, len(newest), head % size
        if n <= h + 1:
            full[h - n + 1:h + 1] = newest[::-1]
        else:
            full[:h + 1] = newest[h::-1]
            full[size - (n - h - 1):] = newest[:h:-1]
        return BucketRing(size, head, full)
    return Kind(_ring_out, back)


def _wide_counts(form: list[Any], size: int) -> list[float]:
    """Counts of two bytes each (``[bytes]``), or ``[[age...], [count...]]`` pairs."""
    if len(form) == 1:
        wide = array("H")
        wide.frombytes(_bytes(form[0]))  # (an odd length raises ValueError)
        if _BIG_ENDIAN:
            wide.byteswap()
        return list(map(float, wide[:size]))
    ages, values = _list(form[0], {int}), _list(form[1], {float})
    if len(ages) != len(values) or min(ages, default=0) < 0:
        raise malformed("ring")
    newest = [0.0] * min(max(ages, default=-1) + 1, size)
    for age, c in zip(ages, values):
        if age < size:
            newest[age] = c
    return newest


def _counts_back(v: Plain, _anchor: int, _config: EngineView) -> dict[str, int]:
    counts = checked_map(v)
    if not set(map(type, counts.values())) <= {int}:
        raise malformed("count")
    return counts


def _ordered_counts(names: tuple[str, ...]) -> Kind:
    """Counts per name: a list in ``names``' order when that says the same, else the dict.

    >>> from forethought.core.config import EngineConfig
    >>> SEVERITY_COUNTS.out({"critical": 2, "info": 1}, 0), SEVERITY_COUNTS.out({"other": 1}, 0)
    ([1, 0, 0, 2], {'other': 1})
    >>> SEVERITY_COUNTS.back([1, 0, 0, 2], 0, EngineConfig())
    {'info': 1, 'critical': 2}
    """
    known = frozenset(names)

    def out(counts: dict[str, int], _anchor: int) -> Plain:
        if counts.keys() <= known and 0 not in counts.values():
            return [counts.get(name, 0) for name in names]
        return counts

    def back(v: Plain, anchor: int, config: EngineView) -> dict[str, int]:
        if type(v) is list:
            if len(v) > len(names):
                raise malformed("list of counts")
            return dict(compress(zip(names, _list(v, {int})), v))  # (zero counts are left out)
        return _counts_back(v, anchor, config)
    return Kind(out, back)


def _series_back(v: Plain, _anchor: int, _config: EngineView) -> dict[str, list[float | int]]:
    series = checked_map(v)
    for values in series.values():
        _list(values, _NUMBER)
    return series


def _timemap_out(mapping: dict[str, list[float]], anchor: int) -> Plain:
    """``{name: [times]}``; the whole seconds the engine keeps go as ``[{name: [seconds after anchor]}]``."""
    flat = list(map(float, chain.from_iterable(mapping.values())))
    if all(map(float.is_integer, flat)) and all(map(_EXACT.__gt__, map(abs, flat))):
        return [{name: [int(t) - anchor for t in times] for name, times in mapping.items()}]
    return {name: _times_out(times, anchor) for name, times in mapping.items()}


def _timemap_back(v: Plain, anchor: int, _config: EngineView) -> dict[str, list[float]]:
    if type(v) is list:
        (seconds,) = v
        after = repeat(anchor)
        return {name: list(map(float, map(add, _list(times, {int}), after)))
                for name, times in checked_map(seconds).items()}
    return {name: _times_back(times, anchor) for name, times in checked_map(v).items()}


def _ew(number_out: Callable[[float], Plain], number_back: Callable[[Plain], float]) -> Kind:
    """An EW baseline as ``[n, mean, var]``, the mean and variance written by ``number_out``."""
    def back(v: Plain, _anchor: int, _config: EngineView) -> EwStats:
        n, mean, var = _list(v)
        return EwStats(checked_int(n), number_back(mean), number_back(var))
    return Kind(lambda s, _anchor: [s.n, number_out(s.mean), number_out(s.var)], back)


def _snapshot_out(text: str, _anchor: int) -> Plain:
    """The model snapshot is base64 text: stored as its bytes when that gives the same text back."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return text
    return raw if base64.b64encode(raw).decode() == text else text


def _snapshot_back(v: Plain, _anchor: int, _config: EngineView) -> str:
    return base64.b64encode(v).decode() if type(v) is bytes else _str(v)


def as_is(value: Any, _anchor: int) -> Plain:
    return value


def _checked(check: Callable[[Plain], Any]) -> Kind:
    return Kind(as_is, lambda v, _anchor, _config: check(v))


INT = Kind(as_is, lambda v, _anchor, _config: checked_int(v), int)
FLOAT = Kind(lambda v, _anchor: float(v), lambda v, _anchor, _config: _float(v))
STR = Kind(as_is, lambda v, _anchor, _config: _str(v), str)
BYTES = Kind(as_is, lambda v, _anchor, _config: _bytes(v), bytes)
INTS = _checked(lambda v: _list(v, {int}))
NUMS = _checked(lambda v: _list(v, _NUMBER))  # ints and floats, each keeping its type
TIME = Kind(time_out, lambda v, anchor, _config: time_back(v, anchor))
CLOCK = Kind(lambda v, anchor: int(v) - anchor, lambda v, anchor, _config: checked_int(v) + anchor)  # whole seconds
COUNTS = Kind(as_is, _counts_back)  # name → int
KIND_COUNTS = _ordered_counts(KINDS)
SEVERITY_COUNTS = _ordered_counts(SEVERITIES)  # errors per severity (the event contract's four)
SERIES = Kind(as_is, _series_back)  # name → ints and floats
TIMES = Kind(_timemap_out, _timemap_back)  # name → times
EW = _ew(float, _float)
EW_DECIMAL = _ew(decimal_out, decimal_back)  # EW with the mean and variance as short decimals
RING = _ring(lambda config: config.ring_buckets)
HOUR_RING = _ring(lambda _config: HOUR_BUCKETS)
SNAPSHOT = Kind(_snapshot_out, _snapshot_back)
