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
from dataclasses import dataclass
from typing import Protocol

from forethought.contracts.records import Reason
from forethought.core import detectors as det
from forethought.core.anomaly import Verdict
from forethought.core.config import EngineConfig
from forethought.core.signals import Detection
from forethought.core.state import HOUR, CustomerState


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


def window_features(state: CustomerState, bucket: int, config: EngineConfig) -> dict[str, float]:
    """The raw features of ``bucket`` (closing now), before it counts in the customer's usual.

    Ratios to the customer's own usual level are 1 (neutral) until ``MIN_HISTORY`` of their own
    active buckets or hours are known: a newcomer is judged by the partition-wide features only.
    """
    events, errors = state.activity.count(bucket), state.errors.count(bucket)
    mean, spread = det.error_baseline(state, config)
    own_bucket = state.bucket_events / state.active_minutes if state.active_minutes >= MIN_HISTORY else None
    own_hour = _usual_hour(state, bucket * config.bucket_seconds)
    return {
        "events": events, "errors": errors, "error_share": errors / events if events else 0.0,
        "events_vs_own": 1.0 if own_bucket is None else events / max(own_bucket, 1.0),
        "error_z": max(0.0, (errors - mean) / max(spread, 1.0)),
        "usage_shift": state.minute_usage,
        "hour_vs_own": 1.0 if own_hour is None else state.activity.total() / max(own_hour, 1.0),
    }


def close_bucket(state: CustomerState, bucket: int, at: float, config: EngineConfig,
                 models: BehaviourModel | None) -> Detection | None:
    """Score the bucket that just closed (at event time ``at``); a detection when it starts an anomalous run."""
    raw = window_features(state, bucket, config)
    state.active_minutes += 1
    state.bucket_events += int(raw["events"])
    state.minute_usage = 0.0
    if models is None:
        return None
    verdict = models.observe_behaviour({f.name: f.squash(raw[f.name]) for f in FEATURES}, at)
    in_run = bool(state.odd) and bucket - state.odd[1] <= config.anomaly_quiet_buckets
    if not verdict.anomalous:
        if state.odd and not in_run:
            state.odd = []
        return None
    if in_run:
        state.odd[1] = bucket
        return None
    state.odd = [bucket, bucket]
    return _detection(bucket, at, raw, verdict, config)


def note_usage(state: CustomerState, shift: float) -> None:
    """A usage report ``shift`` spreads (of ln usage) from the customer's usual, in the newest bucket."""
    state.minute_usage = max(state.minute_usage, round(shift, 3))


def _usual_hour(state: CustomerState, at: float) -> float | None:
    """The customer's mean events per active hour over the hour ring, the present hour excluded
    (None with fewer than ``MIN_HISTORY`` active hours)."""
    now = math.floor(at / HOUR)
    counts = [state.hours.count(h) for h in range(now - state.hours.size + 1, now)]
    active = [c for c in counts if c > 0]
    return sum(active) / len(active) if len(active) >= MIN_HISTORY else None


def _detection(bucket: int, at: float, raw: dict[str, float], verdict: Verdict, config: EngineConfig) -> Detection:
    assert verdict.score is not None and verdict.threshold is not None
    reasons = tuple(_reason(name, raw[name], usual, z, config) for name, _, usual, z in verdict.unusual)
    start = bucket * config.bucket_seconds
    return Detection(
        "behaviour_anomaly", f"behaviour-{start}", at,
        {"behaviour_anomaly": verdict.score, "behaviour_threshold": verdict.threshold},
        reasons, {"bucket_start": start, "threshold": verdict.threshold,
                  "unusual": ", ".join(name for name, *_ in verdict.unusual)},
    )


def _reason(name: str, value: float, usual_share: float, z: float, config: EngineConfig) -> Reason:
    feature = BY_NAME[name]
    usual = feature.unsquash(usual_share)
    direction = "above" if z >= 0 else "below"
    return Reason(
        signal=f"bucket.{name}", observed=round(value, 4), baseline=round(usual, 4), unit=feature.unit,
        text=f"{feature.help.capitalize()} ({config.bucket_seconds}s): {value:.3g}, {abs(z):.1f} spreads {direction}"
        f" what this partition usually sees ({usual:.3g}).",
    )
