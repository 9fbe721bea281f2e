"""Send time: each customer's active hours of the day, learned in their local time, and the hour a
trigger with a send window is released at (issue #16 point 3; docs/playbooks.md, "Send windows").

**What is learned.** An *active hour* is a clock hour in which the customer had at least one event
(their first event of that hour counts, the rest of the hour costs nothing). It is counted under its
local hour of the day (0-23) in the customer's profile time zone (UTC without a profile), as 24
four-bit counts in 12 bytes of the customer's state: when an hour's count would pass 15 every count
is halved, so the profile follows the customer's recent habits (a daily 09:00 visitor fills their
09 count in 15 days, then every halving keeps the shape and forgets half the past). Hour of the
day rather than hour of the week: 12 bytes instead of 84, a usable profile after about a week of
visits instead of months, and a send window of at most a few days rarely needs the weekday to tell
its hours apart. The partition learns the same counts over all its customers
(:class:`PopulationHours`, checkpointed with its models): the fallback for a customer with fewer
than :data:`MIN_OWN` active hours of their own.

>>> own = b""
>>> for _ in range(9):
...     own = counted(own, 9)            # nine days active at 09:00
>>> own = counted(counted(own, 20), 8)  # once at 20:00, once at 08:00
>>> hours(own)[8:11], total(own)
([1, 9, 0], 11)
>>> at = 1_795_998_000.0                # 2026-11-30 00:20 UTC
>>> choice = choose(at, 86_400.0, "UTC", Activity(own, None))
>>> choice.hour, choice.source, choice.at - at   # released at 09:00, 8 h 40 min later
(9, 'own', 31200.0)
>>> choose(at, 86_400.0, "UTC", Activity(b"", None)) is None   # nothing learned: send at once
True

Event time only, integer counts, whole seconds: the same records give the same choice in the
worker, in replay and after a restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import cache
from itertools import chain
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from forethought.core.checkpoint import CheckpointError, integers

HOUR = 3600
SLOTS = 24
MIN_OWN = 8  # active hours of their own before a customer's profile is used (else the population's)
MIN_POPULATION = 100  # active hours a partition must have seen before its profile is used
POPULATION_CAP = 1 << 20  # a population count reaching this halves them all
_NIBBLES = 12
_PAIRS = tuple((b & 15, b >> 4) for b in range(256))  # a byte's two counts, low nibble first
_HALF = bytes(((b >> 5) << 4) | ((b & 15) >> 1) for b in range(256))  # both nibbles of a byte halved


def local_hour(at: float, zone: str | None) -> int:
    """The hour of the day (0-23) of instant ``at`` in IANA zone ``zone`` (None: UTC).

    >>> local_hour(1_795_998_000.0, None), local_hour(1_795_998_000.0, "Asia/Tokyo")
    (0, 9)
    """
    if zone is None or zone == "UTC":
        return int(at // HOUR) % SLOTS
    return datetime.fromtimestamp(at, ZoneInfo(zone)).hour


def counted(own: bytes, hour: int) -> bytes:
    """``own`` (12 bytes of 4-bit counts, or b"" for none) with one more active hour at ``hour``;
    every count is halved first when this one is full (15).

    >>> hours(counted(bytes([0xF0] * 12), 1))[:4]   # hour 1 was full: all halved, then counted
    [0, 8, 0, 7]
    """
    packed = bytearray(own) if len(own) == _NIBBLES else bytearray(_NIBBLES)
    index, shift = hour >> 1, (hour & 1) << 2
    if (packed[index] >> shift) & 15 == 15:
        packed = bytearray(packed.translate(_HALF))
    packed[index] += 1 << shift
    return bytes(packed)


def hours(own: bytes) -> list[int]:
    """The 24 counts of ``own`` (zeros for b"")."""
    if len(own) != _NIBBLES:
        return [0] * SLOTS
    return list(chain.from_iterable(map(_PAIRS.__getitem__, own)))


def total(own: bytes) -> int:
    """How many active hours ``own`` holds (after halvings)."""
    return sum(hours(own))


class Quiet(Protocol):
    """Quiet hours as :class:`forethought.core.policy.timing.QuietHours` holds them: a daily local
    ``[start, end)``, wrapping midnight when ``start > end``."""

    @property
    def start(self) -> time: ...
    @property
    def end(self) -> time: ...


@dataclass(slots=True)
class PopulationHours:
    """A partition's active hours by local hour of the day, over all its customers (integers, halved
    together when one reaches :data:`POPULATION_CAP`): the fallback profile.

    >>> population = PopulationHours()
    >>> for hour in (9, 9, 14):
    ...     population.learn(hour)
    >>> population.counts[9], population.total
    (2, 3)
    >>> again = PopulationHours(); again.load_data(population.to_data()); again == population
    True
    """

    counts: list[int] = field(default_factory=lambda: [0] * SLOTS)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def learn(self, hour: int) -> None:
        """One active hour of some customer at local ``hour``."""
        counts = self.counts
        counts[hour] += 1
        if counts[hour] >= POPULATION_CAP:
            counts[:] = [c >> 1 for c in counts]

    def to_data(self) -> list[int]:
        """The counts as plain data (a checkpoint's part); :meth:`load_data` reads it back."""
        return list(self.counts)

    def load_data(self, data: object) -> None:
        """Replace the counts by those of :meth:`to_data` (checked: :class:`CheckpointError`)."""
        numbers = integers(data, "population hours", SLOTS)
        if min(numbers) < 0:
            raise CheckpointError("corrupt model checkpoint: population hours are negative")
        self.counts = numbers


class Activity(NamedTuple):
    """What the policy reads to choose a send time: the customer's own counts (:func:`counted`'s
    bytes) and their partition's (None: no models, so no population)."""

    own: bytes
    population: PopulationHours | None


class SendTime(NamedTuple):
    """The chosen release: at ``at`` (whole seconds, ``>= now``), the local ``hour``; ``source`` is
    ``own`` or ``population``, ``seen`` the active hours of the customer's own profile."""

    at: float
    hour: int
    source: str
    seen: int
    local: datetime  # ``at`` in the customer's zone


def choose(now: float, window: float, zone: str | None, activity: Activity,
           quiet: Quiet | None = None) -> SendTime | None:
    """When to release a trigger decided at ``now`` with a send window of ``window`` seconds: the
    start of the first local hour within ``[now, now + window]`` whose weight is highest (the current
    hour means now), leaving out hours that begin inside ``quiet`` hours (local times in ``zone``).
    Weights: the customer's own counts, each with half of each neighbour's (a visit at 08:59 and one
    at 09:01 are the same habit), when they have :data:`MIN_OWN` active hours; else the
    population's. None when neither is known yet: send at once. When every hour of the window is
    quiet the choice is now (and the quiet-hours check defers the trigger to their end, as any).

    >>> night = Activity(b"", PopulationHours([0] * 18 + [300, 0, 500, 0, 0, 0]))   # most are on at 20:00
    >>> choice = choose(1_795_998_000.0, 86_400.0, "Asia/Tokyo", night)       # 09:20 in Tokyo
    >>> choice.hour, choice.source, (choice.at - 1_795_998_000.0) / 3600      # 20:00 Tokyo
    (20, 'population', 10.666666666666666)
    >>> from forethought.core.policy.timing import QuietHours
    >>> choose(1_795_998_000.0, 86_400.0, "Asia/Tokyo", night, QuietHours.parse("19:00-08:00")).hour
    18
    """
    counts = hours(activity.own)
    seen = sum(counts)
    if seen >= MIN_OWN:
        padded = [counts[-1], *counts, counts[0]]
        weights, source = [a + b + b + c for a, b, c in zip(padded, counts, padded[2:])], "own"
    elif activity.population is not None and activity.population.total >= MIN_POPULATION:
        weights, source = list(activity.population.counts), "population"
    else:
        return None
    tz = ZoneInfo(zone or "UTC")
    second = math.floor(now)
    local = datetime.fromtimestamp(second, tz)  # (of the whole second: a fraction may round up to the next)
    h0 = local.hour
    now_weight = weights[h0]
    if quiet is not None:
        for h in _quiet_hours(quiet.start, quiet.end):
            weights[h] = -1
        if quiet_at(quiet, local.time()):
            now_weight = -1
    first = second - local.minute * 60 - local.second + HOUR  # the next local hour begins
    steps = min(SLOTS, math.floor((now + window - first) / HOUR) + 1)  # whole hours that begin in the window
    ahead = (weights[h0 + 1:] + weights[:h0 + 1])[:steps]  # the weights of the hours k = 1..steps from now
    top = max(ahead, default=-1)
    best = 1 + ahead.index(top) if top > now_weight else 0  # the earliest of the best; now on a tie
    if best == 0:
        return SendTime(now, h0, source, seen, local)
    at = first + (best - 1) * HOUR
    then = datetime.fromtimestamp(at, tz)
    if then.utcoffset() != local.utcoffset():  # a DST change on the way: the same wall hour
        shift = (local.utcoffset() or timedelta()) - (then.utcoffset() or timedelta())
        at = min(max(at + int(shift.total_seconds()), second), math.floor(now + window))
        then = datetime.fromtimestamp(at, tz)
    return SendTime(float(at), (h0 + best) % SLOTS, source, seen, then)


def quiet_at(quiet: Quiet, local: time) -> bool:
    """Is local wall time ``local`` inside ``quiet`` (as ``QuietHours.contains`` decides)?"""
    if quiet.start <= quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


@cache
def _quiet_hours(start: time, end: time) -> tuple[int, ...]:
    """The hours of the day that begin inside quiet hours ``[start, end)``.

    >>> _quiet_hours(time(22), time(7, 30))
    (0, 1, 2, 3, 4, 5, 6, 7, 22, 23)
    """
    return tuple(h for h in range(SLOTS) if (start <= time(h) < end if start <= end else not end <= time(h) < start))
