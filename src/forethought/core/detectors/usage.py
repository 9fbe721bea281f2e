"""Usage anomalies: a reported quantity far above or below the customer's own level for that metric.

Each metric keeps an EW mean and variance of log(1 + quantity) (winsorised, so an anomaly does not
become the new normal at once). One report beyond ``usage_z`` spreads above is a spike; two in a
row below is a drop. An episode fires once and ends after ``usage_quiet_reports`` normal reports.
Only the first ``usage_metrics`` metrics of a customer are followed, to keep the state small.

>>> s = UsageSettings()
>>> stats: list[float] = []
>>> verdicts = []
>>> for q in [100, 120, 90, 110, 95, 105, 100, 115, 98, 102, 2000]:
...     stats, verdict = observe(stats, q, s)
...     verdicts.append(verdict)
>>> verdicts[-1][0], round(verdicts[-1][1], 1)
('spike', 19.4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from forethought.contracts.events import MAX_QUANTITY, Usage
from forethought.contracts.records import Reason
from forethought.core.baselines import EwStats
from forethought.core.codec_kinds import SERIES
from forethought.core.plugin import Detector, Moment, Slice, check_positive
from forethought.core.signals import Detection, bounded_name
from forethought.core.state_codec import Field

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState

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
    usage_min_reports: int = 8
    usage_min_log_sd: float = 0.1
    usage_quiet_reports: int = 3

    def __post_init__(self) -> None:
        check_positive(self)
        if not 0 < self.usage_alpha <= 1:
            raise ValueError("usage_alpha must be in (0, 1]")


@dataclass(slots=True)
class UsageState(Slice):
    """Per followed metric: ``[n, mean, var, episode, streak]`` of log(1 + quantity) (:func:`observe`)."""

    KEY: ClassVar[str] = "u"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("usage", SERIES, {}),)  # append only

    usage: dict[str, list[float]] = field(default_factory=dict)

    def copy(self) -> UsageState:
        return UsageState({k: list(v) for k, v in self.usage.items()})


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
    sl.usage[event.metric], verdict = observe(sl.usage.get(event.metric, []), event.quantity, s)
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


def observe(data: list[float], quantity: float, s: UsageSettings) -> tuple[list[float], Verdict]:
    """Fold one report into ``data`` = ``[n, mean, var, episode, streak]``; say whether it is anomalous.

    ``episode`` is +1 during a spike, -1 during a drop, 0 otherwise; ``streak`` counts consecutive
    low reports (before a drop fires) or normal reports (before an episode ends).
    """
    stats = _stats(data)
    episode, streak = (int(data[3]), int(data[4])) if data else (0, 0)
    quantity = min(quantity, MAX_QUANTITY)  # the contract's bound; a larger value (an old record) counts as it
    x = math.log1p(quantity)
    sd = max(stats.std, s.usage_min_log_sd)
    z = _z(stats, quantity, s)
    verdict: Verdict = None
    armed = stats.n >= s.usage_min_reports
    ratio = math.exp(x - stats.mean) if stats.n else 1.0  # (1 + quantity) / exp(level), in log space
    high = armed and z >= s.usage_z and ratio >= s.usage_min_ratio
    low = armed and z <= -s.usage_z and ratio <= 1.0 / s.usage_min_ratio
    usual = math.expm1(stats.mean)
    if high:
        verdict = ("spike", quantity / max(usual, 1e-9), z, usual) if episode != 1 else None
        episode, streak = 1, 0
    elif low:
        streak = streak + 1 if episode != -1 else 0
        if episode != -1 and streak >= 2:
            verdict = ("drop", quantity / max(usual, 1e-9), z, usual)
            episode, streak = -1, 0
    elif episode != 0:
        streak += 1
        if streak >= s.usage_quiet_reports:
            episode, streak = 0, 0
    else:
        streak = 0
    bound = s.usage_z * sd
    clipped = min(max(x, stats.mean - bound), stats.mean + bound) if stats.n else x
    stats = stats.update(clipped, s.usage_alpha)
    # rounded here, not when serialised, so a restored state equals the live one
    return [stats.n, round(stats.mean, 6), round(stats.var, 6), episode, streak], verdict


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


def _z(stats: EwStats, quantity: float, s: UsageSettings) -> float:
    """Signed spreads of log(1 + quantity) from the baseline (0 with no baseline)."""
    return (math.log1p(quantity) - stats.mean) / max(stats.std, s.usage_min_log_sd) if stats.n else 0.0
