"""The detectors' side of an event: fold it into the state and say what was seen.

Each ``check_*`` returns a :class:`~forethought.core.signals.Detection` or None; playbooks
decide later what a detection is worth. :func:`facts` gives the ``features.*`` that playbook
conditions read.
"""

from __future__ import annotations

import math
from typing import Any

from forethought.contracts.events import ErrorEvent, FeatureUsed, Usage
from forethought.contracts.records import Reason
from forethought.core import behaviour, snapshots
from forethought.core import decline as dec
from forethought.core import detectors as det
from forethought.core import usage as use
from forethought.core.config import EngineConfig
from forethought.core.models import PartitionModels
from forethought.core.signals import Detection, bounded_name, utc
from forethought.core.state import HOUR, CustomerState
from forethought.core.windows import BucketRing

DAY = 86_400.0


def advance_days(state: CustomerState, ts: float, config: EngineConfig) -> Detection | None:
    """Close the days before ``ts``'s day (feeding the decline test) and count this event."""
    day = math.floor(ts / DAY)
    if state.day < 0:
        state.day = day
    fired = None
    for closing in range(state.day, min(day, state.day + 8)):  # after 8 days the window is empty
        weekly = sum(state.week)
        result = dec.update(state.decline, weekly, config) if config.decline_enabled else []
        if result and result[0] == dec.DETECTED:
            fired = fired or _decline(closing + 1, weekly, result[1])
            result = []
        state.decline = result
        state.week[(closing + 1) % 7] = 0
    state.day = max(state.day, day)
    if state.day - 6 <= day:
        state.week[day % 7] += 1
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


def check_usage(state: CustomerState, event: Usage, ts: float, config: EngineConfig) -> Detection | None:
    """A usage report far from this customer's own level for the metric."""
    if event.metric not in state.usage and len(state.usage) >= config.usage_metrics:
        return None  # only the first few metrics of a customer are followed, to keep state small
    shift = use.distance(state.usage.get(event.metric, []), event.quantity, config)
    if shift is not None and math.floor(ts / config.bucket_seconds) == state.activity.head:
        behaviour.note_usage(state, shift)
    state.usage[event.metric], verdict = use.observe(state.usage.get(event.metric, []), event.quantity, config)
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


def check_burst(state: CustomerState, event: ErrorEvent, ts: float, config: EngineConfig) -> Detection | None:
    """Errors in this bucket far above this customer's own baseline (once per burst)."""
    bucket = math.floor(ts / config.bucket_seconds)
    state.errors.add(bucket)
    state.count_error(event.code, event.severity)
    count = state.errors.count(bucket)
    threshold = det.burst_threshold(state, config)
    if state.burst_bucket is not None or count < threshold:
        return None
    state.burst_bucket, state.quiet_buckets = bucket, 0
    mean, _ = det.error_baseline(state, config)
    score = det.burst_score(count, state, config)
    reason = Reason(
        signal="errors_per_bucket", observed=count, baseline=round(mean, 4), unit=f"errors/{config.bucket_seconds}s",
        text=f"{count:g} errors in {config.bucket_seconds}s (latest {event.code}, {event.severity});"
        f" this customer usually sees {mean:.2g}.",
    )
    return Detection(
        "error_burst", f"burst-{bucket * config.bucket_seconds}", ts, {"anomaly": score, "error_burst_z": score},
        (reason,), {"error_code": event.code, "severity": event.severity},
    )


def check_feature(state: CustomerState, event: FeatureUsed, ts: float, config: EngineConfig) -> Detection | None:
    """The first use of a feature (welcome tips); later uses only refresh its last-use time."""
    seen, second = state.features.get(event.feature), float(math.floor(ts))  # whole seconds keep state small
    if seen is not None:
        state.features[event.feature] = [min(seen[0], second), max(seen[1], second)]
        return None
    if len(state.features) >= config.feature_slots:
        return None  # the first few features of a customer are followed, to keep state small
    state.features[event.feature] = [second, second]
    reason = Reason(signal="features_used", observed=len(state.features), baseline=len(state.features) - 1,
                    unit="features", text=f"First use of {event.feature}.")
    return Detection("feature_first_use", f"first-{event.feature}", ts, {}, (reason,), {"feature": event.feature})


def silence(state: CustomerState, config: EngineConfig) -> Detection:
    """The silence that came due at ``state.deadline``."""
    assert state.last_seen is not None and state.deadline is not None
    at = state.deadline
    gap, usual = at - state.last_seen, det.typical_gap(state, config)
    reason = Reason(
        signal="silence_seconds", observed=round(gap, 3), baseline=round(usual, 3), unit="seconds",
        text=f"No activity for {human(gap)}; this customer usually returns within {human(usual)}"
        f" ({state.visits} visits seen).",
    )
    return Detection(
        "silence", f"silence-{state.last_seen:.3f}", at, {"dropoff": det.silence_probability(gap, state, config)},
        (reason,), {"last_seen_at": utc(state.last_seen).isoformat(), "visits": state.visits},
    )


def daily(seen: dict[str, Any], at: float) -> Detection:
    """The once-a-day look at a customer (``seen``: :func:`facts`' features), for lifecycle playbooks."""
    reason = Reason(
        signal="events_per_7_days", observed=seen["events_last_7_days"],
        baseline=round(seen["usual_events_per_7_days"] or 0.0, 3), unit="events/7d",
        text=f"{seen['events_last_7_days']} events in the last 7 days; {seen['features_used']} features used so far.",
    )
    return Detection("daily", "daily", at, {}, (reason,), {})


def facts(state: CustomerState, now: float, config: EngineConfig,
          models: PartitionModels | None = None) -> dict[str, Any]:
    """The ``features.*`` and ``scores.*`` names of the expression language as of ``now``.

    ``scores.dropoff_learned`` is the partition's learned drop-off probability: None without
    ``models``, while they are cold, or for a customer with no activity yet.
    """
    found = _facts(state, now, config)
    learned = None
    if models is not None and models.warm and state.last_seen is not None:
        learned = models.dropoff(snapshots.vector(found))
    found["scores"]["dropoff_learned"] = learned
    return found


def snapshot_facts(state: CustomerState, now: float, config: EngineConfig) -> dict[str, Any]:
    """The part of :func:`facts` (without the learned score) that a snapshot reads
    (:func:`forethought.core.snapshots.raw`): what a look that runs no playbook needs."""
    silence_for = None if state.last_seen is None else max(0.0, now - state.last_seen)
    return {
        "scores": {"dropoff": round(det.silence_probability(silence_for or 0.0, state, config), 6)},
        "features": {
            "events": state.events, "visits": state.visits, "error_total": state.error_total,
            "silence_seconds": silence_for, "typical_gap_seconds": det.typical_gap(state, config),
            "events_last_7_days": events_last_7_days(state, now), "usual_events_per_7_days": usual_weekly(state, now),
            "days_since_first_seen": _days(state.first_seen, now), "features_used": len(state.features),
        },
    }


def _facts(state: CustomerState, now: float, config: EngineConfig) -> dict[str, Any]:
    silence_for = None if state.last_seen is None else max(0.0, now - state.last_seen)
    errors_now = state.errors.count(math.floor(now / config.bucket_seconds))
    return {
        "scores": {
            "dropoff": round(det.silence_probability(silence_for or 0.0, state, config), 6),
            "anomaly": round(det.burst_score(errors_now, state, config), 6),
        },
        "features": {
            "events": state.events, "visits": state.visits, "error_total": state.error_total,
            "late_events": state.late, "silence_seconds": silence_for,
            "typical_gap_seconds": det.typical_gap(state, config),
            "silence_threshold_seconds": det.silence_threshold(state, config),
            "events_last_7_days": events_last_7_days(state, now),
            "usual_events_per_7_days": usual_weekly(state, now),
            "days_since_first_seen": _days(state.first_seen, now),
            "days_since_last_seen": _days(state.last_seen, now),
            "features_used": len(state.features), "errors_in_current_bucket": errors_now,
            "sessions": state.visits, "session_seconds": _session_seconds(state, now, config),
            "events_last_hour": _recent(state.activity, now, config.bucket_seconds, HOUR),
            "events_last_24_hours": _recent(state.hours, now, HOUR, DAY),
            "used": {name: True for name in state.features},
            "days_since_used": {name: _days(times[1], now) for name, times in state.features.items()},
        },
    }


def events_last_7_days(state: CustomerState, now: float) -> int:
    """Events on the 7 calendar days (UTC) ending with ``now``'s day."""
    if state.day < 0:
        return 0
    first = max(math.floor(now / DAY), state.day) - 6
    return sum(state.week[d % 7] for d in range(first, state.day + 1))


def usual_weekly(state: CustomerState, now: float) -> float | None:
    """The customer's usual events per 7 days: the decline test's level when it runs, else the
    lifetime average once two weeks of history exist (None before)."""
    level = dec.usual_level(state.decline)
    if level is not None or state.first_seen is None or now - state.first_seen < 14 * DAY:
        return level
    return round(state.events * 7 * DAY / (now - state.first_seen), 3)


def _session_seconds(state: CustomerState, now: float, config: EngineConfig) -> float:
    """How long the present session has lasted; 0 once it ended (no activity for ``visit_gap_seconds``)."""
    if state.session_start is None or state.last_seen is None or now - state.last_seen > config.visit_gap_seconds:
        return 0.0
    return round(max(0.0, now - state.session_start), 3)


def _recent(ring: BucketRing, now: float, width: float, span: float) -> int:
    """Events in ``ring`` (buckets ``width`` seconds wide) over the ``span`` seconds ending at ``now``."""
    newest = math.floor(now / width)
    return int(ring.span_total(newest - math.ceil(span / width) + 1, newest))


def _days(since: float | None, now: float) -> float | None:
    return None if since is None else round((now - since) / DAY, 4)


def human(seconds: float) -> str:
    """A duration for people: ``90061`` → ``1.0 d``."""
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
