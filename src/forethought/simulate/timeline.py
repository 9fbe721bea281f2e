"""Time for the simulator: integer epoch milliseconds, ISO strings, and local activity profiles.

Customers are active in *their own* working hours. A profile gives a weight to each half hour
of the local week (mean 1 over the week); :func:`day_weights` turns it into the 48 half-hour
weights of one UTC day for a time zone, so visits can be placed on an "activity clock" that
runs fast in local office hours and almost stops at night.

>>> iso(1_790_000_040_123)
'2026-09-21T14:14:00.123Z'
>>> w = day_weights("office", 0.3, "Asia/Tokyo", day_of(1_790_000_040_123))
>>> len(w.weights), w.weights[1] > 10 * w.weights[30]  # 09:30 vs 00:00 in Tokyo, a Monday
(48, True)
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from zoneinfo import ZoneInfo

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
BIN_MS = 30 * MINUTE_MS
BINS = DAY_MS // BIN_MS
WEEKEND = (5, 6)  # Saturday, Sunday (Monday is 0)

# Local half-hour weights of a weekday, before normalisation, by profile kind.
_HOURS: dict[str, list[float]] = {
    # office: the working day, a lunch dip, a little in the evening, almost nothing at night
    "office": [0.02] * 7 + [0.4, 1.2] + [2.6] * 3 + [1.6] + [2.6] * 4 + [1.4, 0.8] + [0.4] * 3 + [0.15, 0.05],
    # consumer: evenings and lunch breaks
    "consumer": [0.05] * 7 + [0.3, 0.5, 0.6, 0.7, 0.8] + [1.2] * 2 + [0.8] * 4 + [1.6, 2.2, 2.2, 1.8, 0.9, 0.3],
    # machine: integrations run around the clock, busier in business hours
    "machine": [0.7] * 8 + [1.4] * 10 + [0.9] * 6,
}
PROFILES = tuple(_HOURS)


@dataclass(frozen=True, slots=True)
class DayWeights:
    """Half-hour weights of one UTC day, their running sum (``prefix[i]`` = bins before i)."""

    weights: tuple[float, ...]
    prefix: tuple[float, ...]

    @property
    def total(self) -> float:
        return self.prefix[-1]

    def at(self, ms: int) -> float:
        """The running weight at ``ms`` into the day (inverse of :meth:`locate`)."""
        b = min(ms // BIN_MS, BINS - 1)
        return self.prefix[b] + self.weights[b] * (ms - b * BIN_MS) / BIN_MS

    def locate(self, x: float) -> float:
        """Milliseconds into the day where the running weight reaches ``x`` (0 <= x <= total)."""
        b = min(bisect_right(self.prefix, x) - 1, BINS - 1)
        w = self.weights[b]
        return b * BIN_MS + min(BIN_MS - 1, (x - self.prefix[b]) / w * BIN_MS)


def iso(ms: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC string with milliseconds."""
    day, rem = divmod(ms, DAY_MS)
    second, milli = divmod(rem, 1000)
    return (_DAYS.get(day) or _day_prefix(day)) + _SECONDS[second] + _MILLIS[milli]


_DAYS: dict[int, str] = {}
_SECONDS = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}." for s in range(86_400)]
_MILLIS = [f"{m:03d}Z" for m in range(1000)]


def _day_prefix(day: int) -> str:
    text = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
    _DAYS[day] = text
    return text


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    """An aware datetime as epoch milliseconds."""
    return round(moment.timestamp() * 1000)


def day_of(ms: int) -> int:
    """The UTC day number (days since 1970-01-01) of ``ms``."""
    return ms // DAY_MS


def date_of(ms: int) -> str:
    """The UTC calendar date of ``ms`` as ``YYYY-MM-DD``."""
    return iso(ms)[:10]


@lru_cache(maxsize=4096)
def offset_bins(tz: str, day: int) -> int:
    """UTC offset of ``tz`` at noon of UTC ``day``, in half hours (rounded)."""
    noon = _EPOCH + timedelta(days=day, hours=12)
    offset = ZoneInfo(tz).utcoffset(noon) or timedelta(0)
    return round(offset.total_seconds() / 1800)


def local_hour(ms: int, tz: str) -> float:
    """The local hour of day (0–24) of ``ms`` in ``tz``."""
    local = datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(tz))
    return local.hour + local.minute / 60


def day_weights(profile: str, weekend: float, tz: str, day: int) -> DayWeights:
    """The weights of UTC ``day`` for a customer in ``tz`` (``weekend`` scales Sat/Sun)."""
    return _utc_day(profile, round(weekend, 2), offset_bins(tz, day), (day + 3) % 7)


@lru_cache(maxsize=65536)
def _utc_day(profile: str, weekend: float, offset: int, weekday: int) -> DayWeights:
    week = _local_week(profile, weekend)
    weights = []
    for i in range(BINS):
        shift, local_bin = divmod(i + offset, BINS)
        weights.append(week[(weekday + shift) % 7][local_bin])
    return DayWeights(tuple(weights), (0.0, *accumulate(weights)))


@lru_cache(maxsize=512)
def _local_week(profile: str, weekend: float) -> tuple[tuple[float, ...], ...]:
    hours = _HOURS[profile]
    day = [hours[b // 2] for b in range(BINS)]
    week = [[w * (weekend if d in WEEKEND else 1.0) for w in day] for d in range(7)]
    scale = 7 * BINS / sum(map(sum, week))
    return tuple(tuple(w * scale for w in d) for d in week)
