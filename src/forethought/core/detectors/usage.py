"""Usage anomalies: a reported quantity far above or below the customer's own level for that metric.

Each metric keeps an EW mean and variance of log(1 + quantity). A report is *high* when it lies at
least ``usage_min_ratio`` times above the usual level and ``usage_z`` spreads above it (the spread
taken in log space, so a small-quantity metric is judged as fairly as a large one), *low* likewise
below. ``usage_spike_reports`` high reports in a row are a spike, ``usage_drop_reports`` low ones a
drop: one stray report of a frequent reporter is not an anomaly. An episode fires once and ends after
``usage_quiet_reports`` normal reports.

The level must not learn the anomaly it should report: high and low reports are not folded into it
(ordinary ones are, winsorised at ``usage_clip_z`` spreads), so a spike does not become the new normal
and its end is not taken for a drop. Only an episode that lasts ``usage_adapt_seconds`` (a week)
is taken for a new level: the level then starts again from it, as for a new metric. Judging starts
after ``usage_min_reports`` reports; until ``usage_settle_reports`` the spread is taken as at least
``usage_young_log_sd``.

>>> s = UsageSettings()
>>> stats: list[float] = []
>>> verdicts = []
>>> for q in [100, 120, 90, 110, 95, 105, 100, 115, 98, 102, 2000, 1800]:
...     stats, verdict = observe(stats, q, s)
...     verdicts.append(verdict)
>>> verdicts[-2] is None, verdicts[-1][0], round(verdicts[-1][1], 1)
(True, 'spike', 17.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from forethought.contracts.events import MAX_QUANTITY, Usage
from forethought.contracts.records import Reason
from forethought.core.baselines import EwStats
from forethought.core.codec_kinds import (
    SERIES,
    Kind,
    Plain,
    _list,
    checked_int,
    checked_map,
    decimal_back,
    decimal_out,
    malformed,
    time_back,
    time_out,
)
from forethought.core.plugin import Detector, Moment, Slice, check_positive
from forethought.core.signals import Detection, bounded_name
from forethought.core.state_codec import Field

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState
    from forethought.core.views import EngineView

NAME = "usage"
LOG_CAP = math.log1p(MAX_QUANTITY)  # ≈ 41.4: log levels stay here, so exp() of a level is always finite

Verdict = tuple[str, float, float, float] | None  # (direction, ratio to usual, z, usual quantity)


@dataclass(frozen=True, slots=True)
class UsageSettings:
    """Usage anomalies: a report far from the customer's own level for that metric."""

    usage_metrics: int = 4
    usage_alpha: float = 0.05
    usage_z: float = 3.0
    usage_min_ratio: float = 5.0
    usage_min_reports: int = 2
    usage_min_log_sd: float = 0.1
    usage_quiet_reports: int = 3
    usage_spike_reports: int = 2
    usage_drop_reports: int = 2
    usage_clip_z: float = 1.5
    usage_settle_reports: int = 8
    usage_young_log_sd: float = 0.5
    usage_adapt_seconds: float = 7 * 86_400.0

    def __post_init__(self) -> None:
        check_positive(self)
        if not 0 < self.usage_alpha <= 1:
            raise ValueError("usage_alpha must be in (0, 1]")


def _levels_out(usage: dict[str, list[float]], anchor: int) -> dict[str, list[float | int]]:
    """Each metric's ``[n, mean, var, episode, streak, since]`` with the mean and variance as short
    decimals and ``since`` as a time after the anchor (about 9 bytes less per metric, and 4 more
    while in an episode), e.g. ``{"seats": [4, 25354128, 1988004, 0, 0]}``."""
    return {name: [data[0], decimal_out(data[1]), decimal_out(data[2]), *data[3:5],
                   *(time_out(t, anchor) for t in data[5:6])] for name, data in usage.items()}


_LENGTHS = (3, 5, 6)  # a level; with its episode and streak; and when the episode began (observe)


def _levels_back(v: Plain, anchor: int, _config: EngineView) -> dict[str, list[float | int]]:
    usage = checked_map(v)
    back: dict[str, list[float | int]] = {}
    for name, data in usage.items():
        if len(_list(data)) not in _LENGTHS:
            raise malformed("usage level")
        back[name] = [checked_int(data[0]), decimal_back(data[1]), decimal_back(data[2]),
                      *map(checked_int, data[3:5]), *(time_back(t, anchor) for t in data[5:])]
    return back


def _from_v1(usage: dict[str, list[float | int]]) -> dict[str, list[float | int]]:
    """Version 1's levels (any list of numbers) in version 2's lengths: what :func:`observe` never
    reads is left off; a list too short to hold a level is malformed."""
    fitted = {}
    for name, data in usage.items():
        if len(data) < 3 or type(data[0]) is not int:
            raise malformed("usage level")
        kept = data[:3] if len(data) < 5 else data[:6]  # (observe reads an episode only with its streak)
        fitted[name] = [kept[0], float(kept[1]), float(kept[2]), *map(int, kept[3:5]), *map(float, kept[5:])]
    return fitted


LEVELS = Kind(_levels_out, _levels_back)  # metric → its level (observe's list)


@dataclass(slots=True)
class UsageState(Slice):
    """Per followed metric: ``[n, mean, var, episode, streak, since]`` (:func:`observe`)."""

    KEY: ClassVar[str] = "u"
    VERSION: ClassVar[int] = 2  # 2: levels as short decimals, ``since`` after the anchor (:data:`LEVELS`)
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("usage", LEVELS, {}),)  # append only
    FIELDS_BEFORE: ClassVar[dict[int, tuple[Field, ...]]] = {1: (Field("usage", SERIES, {}),)}

    usage: dict[str, list[float]] = field(default_factory=dict)

    def copy(self) -> UsageState:
        return UsageState({k: list(v) for k, v in self.usage.items()})

    @classmethod
    def upgrade(cls, version: int, values: dict[str, Any], config: EngineView) -> UsageState:
        return cls(_from_v1(values.get("usage", {})) if version == 1 else values.get("usage", {}))


def of(state: CustomerState) -> UsageState:
    """The customer's usage slice."""
    return state.slices[NAME]  # type: ignore[no-any-return]


def seen(state: CustomerState) -> UsageState:
    """The slice to read only (:meth:`~forethought.core.state.CustomerState.peek`: no draft copy)."""
    return state.peek(NAME)  # type: ignore[no-any-return]


class UsageAnomaly(Detector):
    """Fires ``usage_anomaly`` (a spike or a drop of one metric); offers ``scores.usage_ratio``."""

    name: ClassVar[str] = NAME
    Settings = UsageSettings
    State = UsageState
    signals = ("usage_anomaly",)
    event_types = frozenset({"usage"})  # on_event acts on these only
    scores = ("usage_ratio",)

    def on_event(self, state: CustomerState, event: InboundEvent, ts: float, s: UsageSettings, m: Moment) -> None:
        if isinstance(event, Usage):
            m.detect(check_usage(of(state), event, ts, s))


def check_usage(sl: UsageState, event: Usage, ts: float, s: UsageSettings) -> Detection | None:
    """A usage report far from this customer's own level for the metric."""
    if event.metric not in sl.usage and len(sl.usage) >= s.usage_metrics:
        return None  # only the first few metrics of a customer are followed, to keep state small
    sl.usage[event.metric], verdict = observe(sl.usage.get(event.metric, []), event.quantity, s, ts)
    if verdict is None:
        return None
    direction, ratio, z, usual = verdict
    unit = event.unit or "units"
    reason = Reason(
        signal=bounded_name(f"usage.{event.metric}"), observed=event.quantity, baseline=round(usual, 3), unit=unit,
        text=f"{event.metric} of {event.quantity:,.4g} {unit} in one report, {ratio:.2g}x this customer's usual"
        f" {usual:,.4g} ({direction}).",
    )
    return Detection(
        "usage_anomaly", f"usage-{direction}-{event.metric}-{ts:.3f}", ts, {"anomaly": abs(z), "usage_ratio": ratio},
        (reason,), {"metric": event.metric, "direction": direction, "unit": unit},
    )


def observe(data: list[float], quantity: float, s: UsageSettings, at: float = 0.0) -> tuple[list[float], Verdict]:
    """Fold one report (made at ``at``) into ``data`` = ``[n, mean, var, episode, streak, since]``; say whether
    it is anomalous.

    ``episode`` is +1 during a spike, -1 during a drop, 0 otherwise. ``streak`` outside an episode
    counts the low reports in a row (> 0) or the high ones (< 0) not yet enough to fire; inside one, the
    normal reports in a row before it ends (> 0) or its anomalous reports so far (< 0). ``since`` is when
    the episode fired (whole seconds), kept only during an episode: outside one the list has five numbers.

    >>> s = UsageSettings()
    >>> data: list[float] = []
    >>> for q in [100, 120, 90, 110, 95, 105, 100, 115, 98, 102]:
    ...     data, _ = observe(data, q, s)
    >>> data, first = observe(data, 3, s)
    >>> data[3:5], first
    ([0, 1], None)
    >>> data, second = observe(data, 4, s, at=1_790_000_000.5)
    >>> data[3:], second[0], round(second[1], 3)
    ([-1, -2, 1790000000.0], 'drop', 0.039)
    """
    stats = _stats(data)
    episode, streak = (int(data[3]), int(data[4])) if len(data) >= 5 else (0, 0)  # a shorter list: no episode
    since = float(data[5]) if len(data) > 5 else float(int(at))
    quantity = min(quantity, MAX_QUANTITY)  # the contract's bound; a larger value (an old record) counts as it
    usual = math.expm1(stats.mean)
    z = _z(stats, quantity, s)
    ratio = quantity / max(usual, 1e-9) if stats.n else 1.0
    direction = 0
    if stats.n >= s.usage_min_reports and abs(z) >= s.usage_z:
        if z > 0 and ratio >= s.usage_min_ratio:
            direction = 1
        elif z < 0 and ratio <= 1.0 / s.usage_min_ratio:
            direction = -1
    episode, streak, fired = _step(episode, streak, direction, s)
    verdict: Verdict = (("spike" if direction > 0 else "drop"), ratio, z, usual) if fired else None
    if direction == 0:
        bound = s.usage_clip_z * _floored(stats.std, stats, s)  # in log(1 + quantity), as the level
        x = math.log1p(quantity)
        stats = stats.update(min(max(x, stats.mean - bound), stats.mean + bound) if stats.n else x, s.usage_alpha)
    elif fired:
        since = float(int(at))
    elif episode == direction and at - since >= s.usage_adapt_seconds:  # a lasting change: a new level, learned anew
        stats, episode, streak = EwStats().update(math.log1p(quantity), s.usage_alpha), 0, 0
    # rounded here, not when serialised, so a restored state equals the live one; ``since`` only
    # during an episode (nothing reads it outside one), which keeps 9 bytes per metric out of the state
    kept = [stats.n, round(stats.mean, 6), round(stats.var, 6), episode, streak]
    return (kept + [since] if episode else kept), verdict


def _step(episode: int, streak: int, direction: int, s: UsageSettings) -> tuple[int, int, bool]:
    """The episode and streak after a report of ``direction`` (+1 high, -1 low, 0 normal); whether it fires.

    >>> s = UsageSettings()
    >>> _step(0, 0, 1, s), _step(0, -1, 1, s), _step(1, -2, 1, s), _step(1, -5, 0, s), _step(1, 2, 0, s)
    ((0, -1, False), (1, -2, True), (1, -3, False), (1, 1, False), (0, 0, False))
    """
    if direction == 0:
        if episode == 0:
            return 0, 0, False
        quiet = max(streak, 0) + 1
        return (0, 0, False) if quiet >= s.usage_quiet_reports else (episode, quiet, False)
    if episode == direction:
        return episode, min(streak, 0) - 1, False
    pending = (-streak if direction > 0 else streak) if episode == 0 else 0
    count = max(pending, 0) + 1
    if count >= (s.usage_spike_reports if direction > 0 else s.usage_drop_reports):
        return direction, -count, True
    return 0, -count if direction > 0 else count, False


def distance(data: list[float], quantity: float, s: UsageSettings) -> float | None:
    """How many spreads ``quantity`` lies from the metric's usual level (``data`` as :func:`observe`
    keeps it), or None before ``usage_min_reports`` reports made a level."""
    stats = _stats(data)
    return abs(_z(stats, min(quantity, MAX_QUANTITY), s)) if stats.n >= s.usage_min_reports else None


def _stats(data: list[float]) -> EwStats:
    """The metric's log-level statistics, the level clamped to ``[0, LOG_CAP]`` (a state written before
    quantities were bounded may hold a level whose exp() overflows)."""
    if not data:
        return EwStats()
    stats = EwStats.from_list(data[:3])
    if 0.0 <= stats.mean <= LOG_CAP and stats.var <= LOG_CAP * LOG_CAP:
        return stats
    return EwStats(stats.n, min(max(stats.mean, 0.0), LOG_CAP), min(max(stats.var, 0.0), LOG_CAP * LOG_CAP))


def _floored(sd: float, stats: EwStats, s: UsageSettings) -> float:
    """A spread (in log units) no smaller than ``usage_min_log_sd``, nor than ``usage_young_log_sd``
    while the level has fewer than ``usage_settle_reports`` reports."""
    sd = max(sd, s.usage_min_log_sd)
    return max(sd, s.usage_young_log_sd) if stats.n < s.usage_settle_reports else sd


def _z(stats: EwStats, quantity: float, s: UsageSettings) -> float:
    """Signed spreads of ``quantity`` from the usual level, in log space (0 with no baseline).

    The level is kept as log(1 + quantity) so that a zero is a valid report; its spread is carried to
    log(quantity) by the delta method (× (1 + usual) / usual), so a metric whose usual value is 1.2
    and one whose usual value is 1,200 both see a tenfold fall as the same number of spreads.

    >>> s = UsageSettings()
    >>> noise = 0.4  # both metrics vary by the same factor from report to report
    >>> small = _z(EwStats(20, math.log1p(1.2), (noise * 1.2 / 2.2) ** 2), 0.12, s)
    >>> large = _z(EwStats(20, math.log1p(1200), (noise * 1200 / 1201) ** 2), 120, s)
    >>> round(small, 1), round(large, 1)
    (-5.8, -5.8)
    """
    if not stats.n:
        return 0.0
    usual = max(math.expm1(stats.mean), 1e-9)
    sd = _floored(stats.std * (1 + usual) / usual, stats, s)
    return (math.log(max(quantity, usual * 1e-3)) - math.log(usual)) / sd
