"""Drop-off by silence: no activity for longer than this customer's own gaps between visits.

Gaps between visits are modelled as log-normal. The customer's EW mean and variance of log-gaps
are shrunk toward a population prior while few gaps are known; the deadline is where the silence
becomes as unlikely as the ``silence_z`` quantile (2.33 → 1 in 100), and never sooner than a
margin over the customer's longest recent break (nights and weekends are not drop-off).

>>> from forethought.core.config import EngineConfig
>>> from forethought.core.state import CustomerState
>>> config = EngineConfig(prior_gap_seconds=3600, silence_min_seconds=60)
>>> state = CustomerState.new("c1", config)
>>> round(silence_threshold(state, config.section("silence"), config.prior_weight))  # exp(ln 3600 + 2.33)
37001
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from forethought.contracts.records import Reason
from forethought.core.baselines import EwStats, normal_cdf
from forethought.core.codec_kinds import EW, EW_DECIMAL, FLOAT, TIME
from forethought.core.plugin import NEVER, Detector, Moment, Slice, check_positive
from forethought.core.signals import Detection, human, utc
from forethought.core.state_codec import Field

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState

NAME = "silence"


@dataclass(frozen=True, slots=True)
class SilenceSettings:
    """Silence: "long" is relative to the customer's own gaps between visits."""

    prior_gap_seconds: float = 86_400.0
    prior_log_sd: float = 1.0
    gap_alpha: float = 0.2
    silence_z: float = 2.33
    silence_min_seconds: float = 3600.0
    silence_max_seconds: float = 90 * 86_400.0
    min_visits_to_arm: int = 2
    # prior_learned: the prior above is replaced by the partition's learned one (core.population) once
    # this many customers with at least prior_min_gaps gaps were seen in a day. Off by default: in a
    # young population the customers who qualify first are the frequent ones (docs/detection-quality.md)
    prior_learned: bool = False
    prior_min_customers: int = 50
    prior_min_gaps: int = 3
    long_gap_factor: float = 2.0
    long_gap_tau_seconds: float = 28 * 86_400.0

    def __post_init__(self) -> None:
        check_positive(self, {"long_gap_factor", "prior_learned"})
        if not 0 < self.gap_alpha <= 1:
            raise ValueError("gap_alpha must be in (0, 1]")
        if self.silence_min_seconds > self.silence_max_seconds:
            raise ValueError("silence_min_seconds must be <= silence_max_seconds")


@dataclass(slots=True)
class SilenceState(Slice):
    """The customer's gaps between visits, their longest recent break and the pending deadline."""

    KEY: ClassVar[str] = "s"
    VERSION: ClassVar[int] = 2  # 2: the gaps' mean and variance as short decimals (EW_DECIMAL)
    FIELDS: ClassVar[tuple[Field, ...]] = (  # append only
        Field("gaps", EW_DECIMAL, EwStats()),
        Field("long_gap", FLOAT, 0.0),
        Field("long_gap_at", TIME, 0.0),
        Field("deadline", TIME),
        Field("silence_fired_for", TIME),
    )
    FIELDS_BEFORE: ClassVar[dict[int, tuple[Field, ...]]] = {1: (Field("gaps", EW, EwStats()), *FIELDS[1:])}

    gaps: EwStats = field(default_factory=EwStats)
    long_gap: float = 0.0
    long_gap_at: float = 0.0
    deadline: float | None = None  # when the present silence becomes unusual (None: unarmed or fired)
    silence_fired_for: float | None = None  # the last_seen whose silence already fired

    def copy(self) -> SilenceState:
        return SilenceState(self.gaps, self.long_gap, self.long_gap_at, self.deadline, self.silence_fired_for)


def of(state: CustomerState) -> SilenceState:
    """The customer's silence slice."""
    return state.slices[NAME]  # type: ignore[no-any-return]


def seen(state: CustomerState) -> SilenceState:
    """The slice to read only (:meth:`~forethought.core.state.CustomerState.peek`: no draft copy)."""
    return state.peek(NAME)  # type: ignore[no-any-return]


class Silence(Detector):
    """Fires ``silence`` once per silence, at its deadline; offers ``scores.dropoff``."""

    name: ClassVar[str] = NAME
    Settings = SilenceSettings
    State = SilenceState
    signals = ("silence",)
    scores = ("dropoff",)
    features = ("silence_seconds", "typical_gap_seconds", "silence_threshold_seconds")

    def before_event(self, state: CustomerState, event: InboundEvent, ts: float, s: SilenceSettings,
                     m: Moment) -> None:
        last = state.last_seen
        if last is not None and ts > last and (gap := ts - last) > m.config.windows.visit_gap_seconds:
            sl = of(state)  # a new visit: its gap teaches the customer's model
            sl.gaps = sl.gaps.update_rounded(math.log(max(gap, 1.0)), s.gap_alpha)
            if gap >= recent_long_gap(sl, ts, s):
                sl.long_gap, sl.long_gap_at = gap, ts

    def on_event(self, state: CustomerState, event: InboundEvent, ts: float, s: SilenceSettings, m: Moment) -> None:
        of(state).deadline = silence_deadline(state, s, m.config.windows.prior_weight)

    def due(self, state: CustomerState, s: SilenceSettings) -> float | None:
        return seen(state).deadline

    def on_due(self, state: CustomerState, due: float, s: SilenceSettings, m: Moment) -> None:
        deadline = seen(state).deadline
        if deadline is not None and deadline <= due:
            sl = of(state)
            m.detect(silence(state, s, m.config.windows.prior_weight))
            sl.silence_fired_for, sl.deadline = state.last_seen, None

    def look_due(self, state: CustomerState, soon: float, s: SilenceSettings, m: Moment) -> float:
        return soon if _teaches_prior(state, s, m) else NEVER

    def on_look(self, state: CustomerState, s: SilenceSettings, m: Moment, look: Any) -> None:
        if m.models is not None and _teaches_prior(state, s, m):
            gaps = seen(state).gaps
            m.models.learn_population(gaps.mean, gaps.var, m.at)

    def facts(self, state: CustomerState, now: float, s: SilenceSettings, m: Moment, found: dict[str, Any],
              brief: bool) -> None:
        weight = m.config.windows.prior_weight
        silence_for = None if state.last_seen is None else max(0.0, now - state.last_seen)
        found["scores"]["dropoff"] = round(silence_probability(silence_for or 0.0, state, s, weight), 6)
        features = found["features"]
        features["silence_seconds"] = silence_for
        features["typical_gap_seconds"] = typical_gap(state, s, weight)
        if not brief:
            features["silence_threshold_seconds"] = silence_threshold(state, s, weight)

    def explain(self, state: CustomerState, now: float, s: SilenceSettings, m: Moment) -> dict[str, Any]:
        weight = m.config.windows.prior_weight
        return {
            "silence_seconds": 0.0 if state.last_seen is None else max(0.0, now - state.last_seen),
            "typical_gap_seconds": typical_gap(state, s, weight),
            "silence_threshold_seconds": silence_threshold(state, s, weight), "silence_deadline": seen(state).deadline,
            "population_prior": {"typical_gap_seconds": round(s.prior_gap_seconds, 3), "log_sd": s.prior_log_sd},
        }


    def summarise(self, state: CustomerState, s: SilenceSettings) -> list[float | int] | None:
        """The customer's gaps between visits (count, mean and variance of log gaps, to 1e-3 and 1e-4):
        an idle customer's drop-off score stays their own (:mod:`forethought.core.summary`)."""
        gaps = of(state).gaps
        return None if gaps.n == 0 else [gaps.n, round(gaps.mean * 1000), round(gaps.var * 10_000)]

    def revive(self, state: CustomerState, part: list[float | int], s: SilenceSettings) -> None:
        if len(part) != 3 or any(type(v) is not int for v in part) or part[0] < 0 or part[2] < 0:
            raise ValueError("a stored silence summary is malformed")
        of(state).gaps = EwStats(int(part[0]), part[1] / 1000, part[2] / 10_000)


def _teaches_prior(state: CustomerState, s: SilenceSettings, m: Moment) -> bool:
    """Whether this customer counts in the partition's learned population prior (``prior_learned``)."""
    return s.prior_learned and m.models is not None and seen(state).gaps.n >= s.prior_min_gaps


def gap_model(state: CustomerState, s: SilenceSettings, prior_weight: float) -> tuple[float, float]:
    """Mean and sd of the customer's log gap between visits, shrunk toward the prior."""
    return seen(state).gaps.shrunk(math.log(s.prior_gap_seconds), s.prior_log_sd, prior_weight)


def silence_threshold(state: CustomerState, s: SilenceSettings, prior_weight: float) -> float:
    """Seconds of silence that count as unusually long for this customer: the larger of the
    log-normal quantile and a margin over the customer's longest recent break."""
    mu, sd = gap_model(state, s, prior_weight)
    raw = math.exp(mu + s.silence_z * sd)
    if state.last_seen is not None:
        raw = max(raw, s.long_gap_factor * recent_long_gap(seen(state), state.last_seen, s))
    return min(max(raw, s.silence_min_seconds), s.silence_max_seconds)


def recent_long_gap(sl: SilenceState, at: float, s: SilenceSettings) -> float:
    """The customer's longest break between visits, fading with time constant ``long_gap_tau_seconds``."""
    return sl.long_gap * math.exp(-max(0.0, at - sl.long_gap_at) / s.long_gap_tau_seconds)


def silence_deadline(state: CustomerState, s: SilenceSettings, prior_weight: float) -> float | None:
    """When the present silence becomes unusual, or None while unarmed or already fired."""
    if state.last_seen is None or state.visits < s.min_visits_to_arm:
        return None
    if seen(state).silence_fired_for == state.last_seen:
        return None
    return state.last_seen + silence_threshold(state, s, prior_weight)


def silence_probability(silence: float, state: CustomerState, s: SilenceSettings, prior_weight: float) -> float:
    """How surely this silence is longer than the customer's usual gap: P(gap <= silence)."""
    if silence <= 0:
        return 0.0
    mu, sd = gap_model(state, s, prior_weight)
    return normal_cdf((math.log(silence) - mu) / sd)


def typical_gap(state: CustomerState, s: SilenceSettings, prior_weight: float) -> float:
    """The customer's median gap between visits, in seconds."""
    return math.exp(gap_model(state, s, prior_weight)[0])


def silence(state: CustomerState, s: SilenceSettings, prior_weight: float) -> Detection:
    """The silence that came due at the slice's deadline."""
    sl = of(state)
    assert state.last_seen is not None and sl.deadline is not None
    at = sl.deadline
    gap, usual = at - state.last_seen, typical_gap(state, s, prior_weight)
    reason = Reason(
        signal="silence_seconds", observed=round(gap, 3), baseline=round(usual, 3), unit="seconds",
        text=f"No activity for {human(gap)}; this customer usually returns within {human(usual)}"
        f" ({state.visits} visits seen).",
    )
    return Detection(
        "silence", f"silence-{state.last_seen:.3f}", at,
        {"dropoff": silence_probability(gap, state, s, prior_weight)},
        (reason,), {"last_seen_at": utc(state.last_seen).isoformat(), "visits": state.visits},
    )
