"""When a trigger may fire: quiet hours, rolling caps and holdout assignment, all pure.

Instants are POSIX seconds passed in by the caller; nothing here reads a clock.
Quiet hours are local wall times in the customer's IANA zone; ``[start, end)`` with
``start > end`` wrapping midnight, and ``start == end`` meaning no quiet hours.

>>> night = QuietHours.parse("22:00-08:00")
>>> at = 1777644000.0               # 2026-05-01 23:00 in Tokyo (14:00 UTC)
>>> night.contains(at, "Asia/Tokyo"), night.contains(at, "UTC")
(True, False)
>>> night.next_open(at, "Asia/Tokyo") - at   # 08:00 the next morning
32400.0
>>> cap_allows([0.0, 100.0], now=86_400.0, limit=2, window=86_400.0)  # (0, 86400] holds one send
True
>>> prune([0.0, 100.0, 200.0], now=86_500.0, keep=86_400.0)
[200.0]
>>> 0.0 <= unit_hash("exp-1", "cust-42") < 1.0, in_holdout("cust-42", "exp-1", share=0.0)
(True, False)

DST: quiet hours follow the wall clock, so when ``end`` is skipped by a spring-forward
gap the window opens at the transition (the first instant whose local time is past
``end``); when clocks fall back, the window opens at the *first* occurrence of ``end``,
and wall times that repeat inside ``[start, end)`` are quiet again.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from forethought.core.signals import unit_hash  # (in signals: core.due schedules looks with it too)

_HOUR = 3600
_SEARCH_DAYS = 4  # local dates after ``at`` searched for the window's end


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily ``[start, end)`` of local wall time during which nothing is sent."""

    start: dt.time
    end: dt.time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """Read ``"HH:MM-HH:MM"``, e.g. ``"22:00-08:00"``.

        >>> QuietHours.parse("bedtime")
        Traceback (most recent call last):
        ...
        ValueError: quiet hours must look like 'HH:MM-HH:MM', got 'bedtime'
        """
        first, dash, second = text.partition("-")
        start, end = _parse_clock(first), _parse_clock(second)
        if not dash or start is None or end is None:
            raise ValueError(f"quiet hours must look like 'HH:MM-HH:MM', got {text!r}")
        return cls(start, end)

    def contains(self, at: float, tz: str) -> bool:
        """Is the local wall time of instant ``at`` in zone ``tz`` inside ``[start, end)``?"""
        return self._quiet(at, ZoneInfo(tz))

    def next_open(self, at: float, tz: str) -> float:
        """``at`` when it is not quiet, else the first instant after it that is not."""
        zone = ZoneInfo(tz)
        if not self._quiet(at, zone):
            return at
        # Local time is continuous between offset transitions, so quiet ends either
        # where the wall clock reaches ``end`` (never quiet) or at a transition.
        reach = _first_wall_hit(self.end, at, zone)
        for change in _transitions(at, reach, zone):
            if not self._quiet(change, zone):
                return change
        return reach

    def _quiet(self, at: float, zone: ZoneInfo) -> bool:
        local = dt.datetime.fromtimestamp(at, zone).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def _parse_clock(text: str) -> dt.time | None:
    """``"HH:MM"`` as a time, or None when it is not one."""
    hours, colon, minutes = text.strip().partition(":")
    if not (colon and len(hours) == len(minutes) == 2 and (hours + minutes).isdigit()):
        return None
    if int(hours) > 23 or int(minutes) > 59:
        return None
    return dt.time(int(hours), int(minutes))


def _first_wall_hit(wall: dt.time, at: float, zone: ZoneInfo) -> float:
    """The first instant ``>= at`` whose local time is exactly ``wall`` (fold 0 before 1)."""
    hit = min(_wall_hits(wall, at, zone), default=None)
    if hit is None:
        raise ValueError(f"local time {wall} does not occur within {_SEARCH_DAYS} days of {at}")
    return hit


def _wall_hits(wall: dt.time, at: float, zone: ZoneInfo) -> Iterator[float]:
    """Instants ``>= at`` with local time ``wall`` on the next few local dates."""
    today = dt.datetime.fromtimestamp(at, zone).date()
    for days in range(-1, _SEARCH_DAYS):
        naive = dt.datetime.combine(today + dt.timedelta(days=days), wall)
        for fold in (0, 1):
            instant = naive.replace(tzinfo=zone, fold=fold).timestamp()
            exists = dt.datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == naive
            if exists and instant >= at:  # a skipped (spring-forward) wall time has no hit
                yield instant


def _transitions(lo: float, hi: float, zone: ZoneInfo) -> list[float]:
    """The instants in ``(lo, hi]`` where the zone's UTC offset changes, ascending.

    Probes hourly and bisects to the second; zones never change offset twice in an hour.
    """
    found: list[float] = []
    left = math.floor(lo)
    before = _offset(left, zone)
    while left < hi:
        right = min(left + _HOUR, math.ceil(hi))
        after = _offset(right, zone)
        if after != before:
            seconds = range(left + 1, right + 1)
            index = bisect.bisect_left(seconds, True, key=lambda s: _offset(s, zone) != before)
            if seconds[index] <= hi:
                found.append(float(seconds[index]))
        left, before = right, after
    return found


def _offset(at: int, zone: ZoneInfo) -> dt.timedelta | None:
    return dt.datetime.fromtimestamp(at, zone).utcoffset()


# --- rolling windows: frequency caps and cooldowns -------------------------------------


def count_since(times: Sequence[float], since: float) -> int:
    """How many of the ascending ``times`` are strictly after ``since``.

    >>> count_since([1.0, 2.0, 3.0], since=2.0)
    1
    """
    return len(times) - bisect.bisect_right(times, since)


def cap_allows(times: Sequence[float], now: float, limit: int, window: float) -> bool:
    """May one more send go out at ``now`` under "``limit`` per ``window``"?

    The cap counts the ascending sends ``times`` in ``(now - window, now]``: a send exactly
    one window ago no longer counts. A cooldown is ``limit=1``.
    """
    inside = bisect.bisect_right(times, now) - bisect.bisect_right(times, now - window)
    return inside < limit


def prune(times: list[float], now: float, keep: float) -> list[float]:
    """A new list of the ascending ``times`` after ``now - keep`` (older ones dropped).

    With ``keep >= window`` this never changes ``cap_allows`` at ``now`` or later.
    """
    return times[bisect.bisect_right(times, now - keep) :]


# --- deterministic holdouts ----------------------------------------------------------------


def in_holdout(customer_id: str, salt: str, share: float) -> bool:
    """Is the customer in the ``share`` of customers held out of experiment ``salt``?

    Share 0 holds no one and 1 everyone; raising the share only ever adds customers.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"holdout share must be within [0, 1], got {share}")
    return unit_hash(salt, customer_id) < share
