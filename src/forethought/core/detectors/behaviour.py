"""What one customer-minute looked like, for the multivariate anomaly detector.

When a customer's activity bucket (a minute by default) closes, which their first event in a later
bucket does, its window features go to the partition's Half-Space Trees
(:mod:`forethought.core.anomaly`). Counts are squashed into ``[0, 1)`` by ``v / (v + scale)``, so
the trees see every customer on one scale; ratios to the customer's own usual level make the same
trees customer-relative. The first anomalous bucket of a run becomes a ``behaviour_anomaly``
detection whose reasons say which features stood out, with the value and the partition's usual.

>>> [f"{f.name}: {f.squash(f.scale or 0.5):.2f}" for f in FEATURES[:3]]
['events: 0.50', 'errors: 0.50', 'error_share: 0.50']
>>> round(FEATURES[0].unsquash(FEATURES[0].squash(42.0)), 6)
42.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from forethought.contracts.events import Usage
from forethought.contracts.records import Reason
from forethought.core.anomaly import Verdict
from forethought.core.codec_kinds import FLOAT, INT, INTS
from forethought.core.detectors import error_burst, usage
from forethought.core.plugin import Detector, Moment, Slice, check_positive
from forethought.core.signals import Detection
from forethought.core.state_codec import Field
from forethought.core.views import EngineView

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState

NAME = "behaviour"
HOUR = 3600


@dataclass(frozen=True, slots=True)
class BehaviourSettings:
    """Multivariate anomaly: per-partition Half-Space Trees over each customer-minute's features; masses
    per event-time window; alerts hold about ``anomaly_alert_rate`` of scored minutes."""

    anomaly_trees: int = 10
    anomaly_tree_height: int = 8
    anomaly_window_seconds: float = 86_400.0
    anomaly_alert_rate: float = 0.0005
    anomaly_min_reference: int = 1000
    anomaly_seed: int = 7
    anomaly_mass_floor: float = 0.1
    anomaly_quiet_buckets: int = 5

    def __post_init__(self) -> None:
        check_positive(self, {"anomaly_seed"})
        if self.anomaly_tree_height > 8:
            raise ValueError(f"anomaly_tree_height must be <= 8 (memory and time double per level), "
                             f"got {self.anomaly_tree_height}")
        if not self.anomaly_alert_rate < 0.5:
            raise ValueError(f"anomaly_alert_rate must be < 0.5, got {self.anomaly_alert_rate}")


@dataclass(slots=True)
class BehaviourState(Slice):
    """Closed active buckets and their events (the customer's usual per bucket), the newest bucket's
    largest usage shift, and ``[first, last]`` bucket of the present anomalous run."""

    KEY: ClassVar[str] = "a"
    FIELDS: ClassVar[tuple[Field, ...]] = (  # append only
        Field("active_minutes", INT, 0),
        Field("bucket_events", INT, 0),
        Field("minute_usage", FLOAT, 0.0),
        Field("odd", INTS, []),
    )

    active_minutes: int = 0
    bucket_events: int = 0
    minute_usage: float = 0.0
    odd: list[int] = field(default_factory=list)

    def copy(self) -> BehaviourState:
        return BehaviourState(self.active_minutes, self.bucket_events, self.minute_usage, list(self.odd))


def of(state: CustomerState) -> BehaviourState:
    """The customer's behaviour slice."""
    return state.slices[NAME]  # type: ignore[no-any-return]


def seen(state: CustomerState) -> BehaviourState:
    """The slice to read only (:meth:`~forethought.core.state.CustomerState.peek`: no draft copy)."""
    return state.peek(NAME)  # type: ignore[no-any-return]


class Behaviour(Detector):
    """Fires ``behaviour_anomaly`` when a closed bucket starts an anomalous run (needs the partition's models)."""

    name: ClassVar[str] = NAME
    Settings = BehaviourSettings
    State = BehaviourState
    signals = ("behaviour_anomaly",)
    scores = ("behaviour_anomaly", "behaviour_threshold")
    needs = (error_burst.NAME, usage.NAME)
    event_types = frozenset({"usage"})  # on_event acts on these only

    def check(self, config: EngineView) -> None:
        if not config.allowed_lateness_seconds < config.anomaly_window_seconds:
            raise ValueError("anomaly_window_seconds must be longer than allowed_lateness_seconds (the trees'"
                             " reference is the last window closed that long ago), got"
                             f" {config.anomaly_window_seconds}")

    def before_event(self, state: CustomerState, event: InboundEvent, ts: float, s: BehaviourSettings,
                     m: Moment) -> None:
        """The newest activity bucket closes when a later one begins (before the rings move)."""
        width = m.config.windows.bucket_seconds
        bucket, head = math.floor(ts / width), state.activity.head
        if 0 <= head < bucket and state.activity.count(head) > 0:
            m.detect(close_bucket(state, head, ts, s, m))

    def on_event(self, state: CustomerState, event: InboundEvent, ts: float, s: BehaviourSettings,
                 m: Moment) -> None:
        """A usage report's distance from the customer's usual counts in the newest bucket."""
        if not isinstance(event, Usage):
            return
        followed, settings = usage.seen(state).usage, m.config.section(usage.NAME)
        if event.metric not in followed and len(followed) >= settings.usage_metrics:
            return
        shift = usage.distance(followed.get(event.metric, []), event.quantity, settings)
        if shift is not None and math.floor(ts / m.config.windows.bucket_seconds) == state.activity.head:
            sl = of(state)
            sl.minute_usage = max(sl.minute_usage, round(shift, 3))

    def explain(self, state: CustomerState, now: float, s: BehaviourSettings, m: Moment) -> dict[str, Any]:
        odd, width = seen(state).odd, m.config.windows.bucket_seconds
        run = None if not odd else {"first_bucket_start": odd[0] * width, "last_bucket_start": odd[1] * width}
        if m.models is None:
            return {"behaviour": {"anomalous_run": run, "reference_size": None, "threshold": None, "origin": None}}
        trees = m.models.behaviour
        return {"behaviour": {"anomalous_run": run, "reference_size": trees.reference_size(now),
                              "threshold": trees.threshold(now), "origin": m.models.behaviour_origin}}


class BehaviourModel(Protocol):
    """What :func:`close_bucket` asks of a partition's models (:class:`forethought.core.models.PartitionModels`)."""

    def observe_behaviour(self, x: dict[str, float], at: float) -> Verdict:
        """Score one closed bucket's squashed features, then learn from them."""
        ...


@dataclass(frozen=True, slots=True)
class WindowFeature:
    """One input of the trees: a non-negative value squashed by ``scale`` (None: already in [0, 1])."""

    name: str
    scale: float | None
    unit: str
    help: str

    def squash(self, value: float) -> float:
        """Into ``[0, 1)``; the inverse of :meth:`unsquash`."""
        value = max(0.0, value)
        return min(1.0, value) if self.scale is None else value / (value + self.scale)

    def unsquash(self, share: float) -> float:
        """Back to the feature's own unit (how reasons show the partition's usual)."""
        if self.scale is None:
            return share
        return self.scale * share / (1.0 - share) if share < 1.0 else math.inf


FEATURES: tuple[WindowFeature, ...] = (
    WindowFeature("events", 10.0, "events", "events in the bucket"),
    WindowFeature("errors", 3.0, "errors", "errors in the bucket"),
    WindowFeature("error_share", None, "share", "errors / events in the bucket"),
    WindowFeature("events_vs_own", 1.0, "x usual", "events in the bucket / the customer's events per active bucket"),
    WindowFeature("error_z", 4.0, "spreads", "errors above the customer's own error baseline, in spreads"),
    WindowFeature("usage_shift", 3.0, "spreads",
                  "largest usage report's distance from the customer's usual, in spreads"),
    WindowFeature("hour_vs_own", 1.0, "x usual",
                  "events in the minute ring (the last hour by default) / the customer's events per active hour"),
)
NAMES = tuple(f.name for f in FEATURES)
BY_NAME = {f.name: f for f in FEATURES}


MIN_HISTORY = 5  # active buckets (or hours) of the customer's own before ratios to their usual count


def window_features(state: CustomerState, bucket: int, m: Moment) -> dict[str, float]:
    """The raw features of ``bucket`` (closing now), before it counts in the customer's usual.

    Ratios to the customer's own usual level are 1 (neutral) until ``MIN_HISTORY`` of their own
    active buckets or hours are known: a newcomer is judged by the partition-wide features only.
    """
    burst, sl = error_burst.seen(state), seen(state)
    events, errors = state.activity.count(bucket), burst.errors.count(bucket)
    mean, spread = error_burst.error_baseline(burst, m.config.section(error_burst.NAME), m.config.windows.prior_weight)
    own_bucket = sl.bucket_events / sl.active_minutes if sl.active_minutes >= MIN_HISTORY else None
    own_hour = _usual_hour(state, bucket * m.config.windows.bucket_seconds)
    return {
        "events": events, "errors": errors, "error_share": errors / events if events else 0.0,
        "events_vs_own": 1.0 if own_bucket is None else events / max(own_bucket, 1.0),
        "error_z": max(0.0, (errors - mean) / max(spread, 1.0)),
        "usage_shift": sl.minute_usage,
        "hour_vs_own": 1.0 if own_hour is None else state.activity.total() / max(own_hour, 1.0),
    }


def close_bucket(state: CustomerState, bucket: int, at: float, s: BehaviourSettings, m: Moment) -> Detection | None:
    """Score the bucket that just closed (at event time ``at``); a detection when it starts an anomalous run."""
    raw, sl = window_features(state, bucket, m), of(state)
    sl.active_minutes += 1
    sl.bucket_events += int(raw["events"])
    sl.minute_usage = 0.0
    if m.models is None:
        return None
    verdict = m.models.observe_behaviour({f.name: f.squash(raw[f.name]) for f in FEATURES}, at)
    in_run = bool(sl.odd) and bucket - sl.odd[1] <= s.anomaly_quiet_buckets
    if not verdict.anomalous:
        if sl.odd and not in_run:
            sl.odd = []
        return None
    if in_run:
        sl.odd[1] = bucket
        return None
    sl.odd = [bucket, bucket]
    return _detection(bucket, at, raw, verdict, m.config.windows.bucket_seconds)


def _usual_hour(state: CustomerState, at: float) -> float | None:
    """The customer's mean events per active hour over the hour ring, the present hour excluded
    (None with fewer than ``MIN_HISTORY`` active hours)."""
    now, ring = math.floor(at / HOUR), state.hours
    if ring.head < 0:
        return None
    size, counts = ring.size, ring.counts  # BucketRing.count over the hours before ``now``, unrolled
    low, high = max(now - size + 1, ring.head - size + 1), min(now - 1, ring.head)
    active = [c for c in (counts[h % size] for h in range(low, high + 1)) if c > 0]
    return sum(active) / len(active) if len(active) >= MIN_HISTORY else None


def _detection(bucket: int, at: float, raw: dict[str, float], verdict: Verdict, width: int) -> Detection:
    assert verdict.score is not None and verdict.threshold is not None
    reasons = tuple(_reason(name, raw[name], usual, z, width) for name, _, usual, z in verdict.unusual)
    start = bucket * width
    return Detection(
        "behaviour_anomaly", f"behaviour-{start}", at,
        {"behaviour_anomaly": verdict.score, "behaviour_threshold": verdict.threshold},
        reasons, {"bucket_start": start, "threshold": verdict.threshold,
                  "unusual": ", ".join(name for name, *_ in verdict.unusual)},
    )


def _reason(name: str, value: float, usual_share: float, z: float, width: int) -> Reason:
    feature = BY_NAME[name]
    usual = feature.unsquash(usual_share)
    direction = "above" if z >= 0 else "below"
    return Reason(
        signal=f"bucket.{name}", observed=round(value, 4), baseline=round(usual, 4), unit=feature.unit,
        text=f"{feature.help.capitalize()} ({width}s): {value:.3g}, {abs(z):.1f} spreads {direction}"
        f" what this partition usually sees ({usual:.3g}).",
    )
