"""Drop-off by decline: a sustained fall of a customer's weekly activity against their own level.

The slice counts events per UTC day over the last 7 days (which also gives playbooks
``features.events_last_7_days``). Each closed day feeds ``log(1 + events in the 7 days ending that
day)`` to River's PageHinkley test in "down" mode (``decline_enabled``); the 7-day window smooths
nights and weekends away. A window with no activity at all is silence (the silence detector's
case) and resets the test. The test's four numbers live in the slice; a River detector is rebuilt
from them for each update.

>>> s = DeclineSettings(decline_enabled=True, decline_min_days=5, decline_threshold=1.0)
>>> data: list[float] = []
>>> fired = [day for day, weekly in enumerate([70] * 20 + [10] * 5)
...          if (data := update(data, weekly, s))[0] == -1]
>>> fired
[20]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from river import drift, stats

from forethought.contracts.records import Reason
from forethought.core.codec_kinds import INT, INTS, NUMS
from forethought.core.plugin import Detector, Moment, Slice, check_positive
from forethought.core.signals import Detection
from forethought.core.state_codec import Field

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState

NAME = "decline"
DAY = 86_400.0
DETECTED = -1.0


@dataclass(frozen=True, slots=True)
class DeclineSettings:
    """Decline: weekly activity against the customer's own level (River PageHinkley)."""

    decline_enabled: bool = False
    decline_min_days: int = 14
    decline_delta: float = 0.05
    decline_threshold: float = 2.0
    decline_alpha: float = 0.9999

    def __post_init__(self) -> None:
        check_positive(self, {"decline_delta", "decline_enabled"})
        if not 0 < self.decline_alpha <= 1:
            raise ValueError("decline_alpha must be in (0, 1]")


@dataclass(slots=True)
class DeclineState(Slice):
    """The newest day seen, events per day of the last 7 (by day mod 7), and the test's numbers."""

    KEY: ClassVar[str] = "d"
    FIELDS: ClassVar[tuple[Field, ...]] = (  # append only
        Field("day", INT, -1),
        Field("week", INTS, [0] * 7),
        Field("decline", NUMS, []),
    )

    day: int = -1
    week: list[int] = field(default_factory=lambda: [0] * 7)
    decline: list[float] = field(default_factory=list)

    def copy(self) -> DeclineState:
        return DeclineState(self.day, list(self.week), list(self.decline))


def of(state: CustomerState) -> DeclineState:
    """The customer's decline slice."""
    return state.slices[NAME]  # type: ignore[no-any-return]


def seen(state: CustomerState) -> DeclineState:
    """The slice to read only (:meth:`~forethought.core.state.CustomerState.peek`: no draft copy)."""
    return state.peek(NAME)  # type: ignore[no-any-return]


class Decline(Detector):
    """Fires ``decline``; offers ``features.events_last_7_days`` and ``usual_events_per_7_days``."""

    name: ClassVar[str] = NAME
    Settings = DeclineSettings
    State = DeclineState
    signals = ("decline",)
    scores = ("decline_ratio",)
    features = ("events_last_7_days", "usual_events_per_7_days")

    def before_event(self, state: CustomerState, event: InboundEvent, ts: float, s: DeclineSettings,
                     m: Moment) -> None:
        m.detect(advance_days(of(state), ts, s))

    def facts(self, state: CustomerState, now: float, s: DeclineSettings, m: Moment, found: dict[str, Any],
              brief: bool) -> None:
        features = found["features"]
        features["events_last_7_days"] = events_last_7_days(seen(state), now)
        features["usual_events_per_7_days"] = usual_weekly(state, now)


def advance_days(sl: DeclineState, ts: float, s: DeclineSettings) -> Detection | None:
    """Close the days before ``ts``'s day (feeding the decline test) and count this event."""
    day = math.floor(ts / DAY)
    if sl.day < 0:
        sl.day = day
    fired = None
    for closing in range(sl.day, min(day, sl.day + 8)):  # after 8 days the window is empty
        weekly = sum(sl.week)
        result = update(sl.decline, weekly, s) if s.decline_enabled else []
        if result and result[0] == DETECTED:
            fired = fired or _decline(closing + 1, weekly, result[1])
            result = []
        sl.decline = result
        sl.week[(closing + 1) % 7] = 0
    sl.day = max(sl.day, day)
    if sl.day - 6 <= day:
        sl.week[day % 7] += 1
    return fired


def _decline(day: int, weekly: float, level: float) -> Detection:
    reason = Reason(
        signal="events_per_7_days", observed=weekly, baseline=round(level, 3), unit="events/7d",
        text=f"Activity over the last 7 days fell to {weekly:g} events; this customer's usual level is {level:.0f}.",
    )
    return Detection(
        "decline", f"decline-{day}", day * DAY,
        {"dropoff": max(0.0, 1.0 - weekly / level) if level else 0.0,
         "decline_ratio": weekly / level if level else 0.0},
        (reason,), {"usual_events_per_7_days": round(level, 1), "events_last_7_days": weekly},
    )


def events_last_7_days(sl: DeclineState, now: float) -> int:
    """Events on the 7 calendar days (UTC) ending with ``now``'s day."""
    if sl.day < 0:
        return 0
    first = max(math.floor(now / DAY), sl.day) - 6
    if first > sl.day:  # a week or more since the newest day seen (most looks)
        return 0
    week = sl.week
    return sum([week[d % 7] for d in range(first, sl.day + 1)])


def usual_weekly(state: CustomerState, now: float) -> float | None:
    """The customer's usual events per 7 days: the decline test's level when it runs, else the
    lifetime average once two weeks of history exist (None before)."""
    level = usual_level(seen(state).decline)
    if level is not None or state.first_seen is None or now - state.first_seen < 14 * DAY:
        return level
    return round(state.events * 7 * DAY / (now - state.first_seen), 3)


def update(data: list[float], weekly_events: float, s: DeclineSettings) -> list[float]:
    """Feed one closed day; returns the new test state, or ``[-1, level]`` when a decline is detected.

    ``level`` is the customer's usual weekly activity (events per 7 days) before the fall.
    """
    if weekly_events <= 0:
        return []
    test = _restore(data, s)
    test.update(math.log1p(weekly_events))
    if test.drift_detected:
        return [DETECTED, math.expm1(test._x_mean.get())]
    return [test._x_mean.n, test._x_mean.get(), test._sum_decrease, test._max_decrease]


def usual_level(data: list[float]) -> float | None:
    """The customer's usual weekly activity according to the test's running mean."""
    return math.expm1(data[1]) if len(data) == 4 else None


def _restore(data: list[float], s: DeclineSettings) -> drift.PageHinkley:
    test = drift.PageHinkley(min_instances=s.decline_min_days, delta=s.decline_delta,
                             threshold=s.decline_threshold, alpha=s.decline_alpha, mode="down")
    if len(data) == 4:
        test._x_mean = stats.Mean._from_state(n=data[0], mean=data[1])
        test._sum_decrease, test._max_decrease = data[2], data[3]  # type: ignore[assignment]  # River starts them at int 0
    return test
