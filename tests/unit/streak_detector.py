"""A detector that exists only in the tests: proof that adding one is one module and one registry line.

``streak_broken``: a customer active on at least ``streak_min_days`` consecutive UTC days who then
misses a whole day. It uses every part of the plug-in contract (forethought.core.plugin): a settings
section, a slice with its own codec and version, an event hook, a due time of its own, a fact for
playbooks and a detection with its reason. docs/adding-a-detector.md shows the same module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from forethought.contracts.records import Reason
from forethought.core.codec_kinds import INT
from forethought.core.plugin import Detector, Moment, Slice, check_positive
from forethought.core.signals import Detection
from forethought.core.state_codec import Field

DAY = 86_400


@dataclass(frozen=True, slots=True)
class StreakSettings:
    streak_min_days: int = 3  # FORETHOUGHT_ENGINE__STREAK_MIN_DAYS

    def __post_init__(self) -> None:
        check_positive(self)


@dataclass(slots=True)
class StreakState(Slice):
    KEY: ClassVar[str] = "k"  # its key in the stored state: short, unique among detectors
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("days", INT, 0), Field("last_day", INT, -1))

    days: int = 0  # consecutive active days, ending with last_day
    last_day: int = -1  # the newest UTC day (days since the epoch) with activity


class Streak(Detector):
    name: ClassVar[str] = "streak"
    Settings = StreakSettings
    State = StreakState
    signals = ("streak_broken",)
    features = ("streak_days",)

    def on_event(self, state: Any, event: Any, ts: float, s: StreakSettings, m: Moment) -> None:
        mine: StreakState = state.slice(self.name)
        day = math.floor(ts / DAY)
        if day == mine.last_day + 1:
            mine.days += 1
        elif day > mine.last_day:
            mine.days = 1
        mine.last_day = max(mine.last_day, day)

    def due(self, state: Any, s: StreakSettings) -> float | None:
        mine: StreakState = state.slice(self.name)
        return (mine.last_day + 2) * DAY if mine.days >= s.streak_min_days else None  # a whole day missed

    def on_due(self, state: Any, due: float, s: StreakSettings, m: Moment) -> None:
        mine: StreakState = state.slice(self.name)
        if mine.days >= s.streak_min_days and due >= (mine.last_day + 2) * DAY:
            reason = Reason(signal="streak_days", observed=mine.days, baseline=s.streak_min_days, unit="days",
                            text=f"Active {mine.days} days in a row, then not at all yesterday.")
            m.detect(Detection("streak_broken", f"streak-{mine.last_day}", due, {}, (reason,),
                               {"streak_days": mine.days}))
            mine.days = 0

    def facts(self, state: Any, now: float, s: StreakSettings, m: Moment, found: dict[str, Any],
              brief: bool) -> None:
        found["features"]["streak_days"] = state.slice(self.name).days
