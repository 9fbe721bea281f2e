"""The engine's entry points: every driver (worker, replay, tests) calls these and only these.

``process`` folds one event into a customer's state; ``tick`` advances a customer to a point
in event time (silence can only be seen this way). Both return a :class:`Step`: the new
state, the triggers that fired and what was observed. No I/O, no wall clock.

>>> from datetime import datetime, timezone
>>> from forethought.contracts.events import ErrorEvent
>>> config = EngineConfig(bucket_seconds=10, burst_min_errors=3)
>>> state, fired = None, []
>>> for i in range(3):
...     event = ErrorEvent(event_id=f"e{i}", customer_id="c1", code="E42",
...         occurred_at=datetime(2026, 11, 22, 12, 0, i, tzinfo=timezone.utc))
...     step = process(state, event, config)
...     state, fired = step.state, fired + list(step.triggers)
>>> [(t.playbook, t.reasons[0].observed) for t in fired]
[('error_burst', 3.0)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from forethought.contracts.events import ErrorEvent, InboundEvent, Usage
from forethought.contracts.records import Reason, Trigger
from forethought.core import decline as dec
from forethought.core import detectors as det
from forethought.core import usage as use
from forethought.core.config import EngineConfig
from forethought.core.state import CustomerState
from forethought.core.triggers import ACTIVITY_DECLINE, ERROR_BURST, SILENCE_DROPOFF, USAGE_ANOMALY, build_trigger, utc


DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Observation:
    """Something a driver may count or log: ``kind`` plus a few details."""

    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    """The result of one entry-point call. ``state`` is None when the customer was evicted."""

    state: CustomerState | None
    triggers: tuple[Trigger, ...] = ()
    observations: tuple[Observation, ...] = ()


def process(state: CustomerState | None, event: InboundEvent, config: EngineConfig) -> Step:
    """Fold ``event`` into ``state`` (None for a new customer).

    A silence that came due before this event fires first, exactly as a timer would have
    fired it, so the outcome never depends on when the timer last ran.
    """
    ts = event.epoch
    earlier = tick(state, ts, config) if state is not None else Step(None)
    state = earlier.state or CustomerState.new(event.customer_id, config)
    if state.remember(event.event_id, config.recent_ids):
        duplicate = Observation("duplicate", {"event_id": event.event_id})
        return Step(state, earlier.triggers, (*earlier.observations, duplicate))
    step = _fold(state, event, ts, config)
    return Step(step.state, earlier.triggers + step.triggers, earlier.observations + step.observations)


def _fold(state: CustomerState, event: InboundEvent, ts: float, config: EngineConfig) -> Step:
    state.events += 1
    state.by_type[event.type] = state.by_type.get(event.type, 0) + 1
    state.account_id = event.account_id or state.account_id
    is_error = isinstance(event, ErrorEvent)
    state.error_total += int(is_error)
    if state.last_seen is not None and ts < state.last_seen - config.allowed_lateness_seconds:
        state.late += 1
        return Step(state, observations=(Observation("late", {"lag": state.last_seen - ts}),))
    declined = _advance_days(state, ts, config)
    _record_activity(state, ts, config)
    burst = _check_burst(state, event, ts, config) if is_error else None
    unusual = _check_usage(state, event, ts, config) if isinstance(event, Usage) else None
    state.deadline = det.silence_deadline(state, config)
    return Step(state, tuple(t for t in (declined, burst, unusual) if t is not None))


def tick(state: CustomerState, now: float, config: EngineConfig) -> Step:
    """Advance ``state`` to event time ``now``: fire a due silence, evict when idle too long."""
    if state.last_seen is not None and now - state.last_seen >= config.idle_ttl_seconds:
        return Step(None, observations=(Observation("evicted", {"idle": now - state.last_seen}),))
    if state.deadline is None or now < state.deadline:
        return Step(state)
    trigger = _silence_trigger(state, now, config)
    state.silence_fired_for = state.last_seen
    state.deadline = None
    return Step(state, (trigger,))


def next_due(state: CustomerState, config: EngineConfig) -> float | None:
    """The event time at which :func:`tick` has something to do for this customer."""
    if state.deadline is not None:
        return state.deadline
    return None if state.last_seen is None else state.last_seen + config.idle_ttl_seconds


def explain(state: CustomerState, now: float, config: EngineConfig) -> dict[str, Any]:
    """Scores and baselines as of ``now``, for people and web views."""
    silence = max(0.0, now - (state.last_seen or now))
    current_errors = state.errors.count(math.floor(now / config.bucket_seconds))
    return {
        "customer_id": state.customer_id,
        "as_of": now,
        "scores": {
            "dropoff": round(det.silence_probability(silence, state, config), 6),
            "anomaly": round(det.burst_score(current_errors, state, config), 6),
        },
        "silence_seconds": silence,
        "typical_gap_seconds": det.typical_gap(state, config),
        "silence_threshold_seconds": det.silence_threshold(state, config),
        "silence_deadline": state.deadline,
        "errors_in_current_bucket": current_errors,
        "error_baseline_per_bucket": det.error_baseline(state, config)[0],
        "error_burst_threshold": det.burst_threshold(state, config),
        "in_error_burst": state.burst_bucket is not None,
        "events": state.events, "late_events": state.late, "visits": state.visits,
        "by_type": dict(state.by_type),
        "events_last_7_days": sum(state.week), "usual_events_per_7_days": dec.usual_level(state.decline),
    }


def _record_activity(state: CustomerState, ts: float, config: EngineConfig) -> None:
    if state.last_seen is None:
        state.first_seen, state.last_seen, state.visits = ts, ts, 1
    elif ts > state.last_seen:
        gap = ts - state.last_seen
        if gap > config.visit_gap_seconds:
            state.visits += 1
            state.gaps = state.gaps.update(math.log(max(gap, 1.0)), config.gap_alpha)
            det.note_gap(state, gap, ts, config)
        state.last_seen = ts
    bucket = math.floor(ts / config.bucket_seconds)
    state.activity.add(bucket)
    old_head = state.errors.head
    closed = state.errors.advance(bucket, max_closed=config.ring_buckets)
    skipped = 0 if old_head < 0 else max(0, bucket - old_head - len(closed))
    det.fold_closed_error_buckets(state, closed, skipped, config)


def _advance_days(state: CustomerState, ts: float, config: EngineConfig) -> Trigger | None:
    """Close the days before ``ts``'s day (feeding the decline test) and count this event."""
    day = math.floor(ts / DAY)
    if state.day < 0:
        state.day = day
    fired = None
    for closing in range(state.day, min(day, state.day + 8)):  # after 8 days the window is empty
        weekly = sum(state.week)
        result = dec.update(state.decline, weekly, config) if config.decline_enabled else []
        if result and result[0] == dec.DETECTED:
            fired = fired or _decline_trigger(state, closing + 1, weekly, result[1], config)
            result = []
        state.decline = result
        state.week[(closing + 1) % 7] = 0
    state.day = max(state.day, day)
    if state.day - 6 <= day:
        state.week[day % 7] += 1
    return fired


def _decline_trigger(state: CustomerState, day: int, weekly: float, level: float, config: EngineConfig) -> Trigger:
    reason = Reason(
        signal="events_per_7_days", observed=weekly, baseline=round(level, 3), unit="events/7d",
        text=f"Activity over the last 7 days fell to {weekly:g} events; this customer's usual level is {level:.0f}.",
    )
    return build_trigger(
        ACTIVITY_DECLINE, customer_id=state.customer_id, account_id=state.account_id, episode=f"decline-{day}",
        fired_at=day * DAY, ttl_seconds=config.trigger_ttl_seconds,
        scores={"dropoff": max(0.0, 1.0 - weekly / level) if level else 0.0, "decline_ratio": weekly / level if level else 0.0},
        reasons=[reason], context={"usual_events_per_7_days": round(level, 1), "events_last_7_days": weekly},
    )


def _check_usage(state: CustomerState, event: Usage, ts: float, config: EngineConfig) -> Trigger | None:
    if event.metric not in state.usage and len(state.usage) >= config.usage_metrics:
        return None  # only the first few metrics of a customer are followed, to keep state small
    state.usage[event.metric], verdict = use.observe(state.usage.get(event.metric, []), event.quantity, config)
    if verdict is None:
        return None
    direction, ratio, z, usual = verdict
    unit = event.unit or "units"
    reason = Reason(
        signal=f"usage.{event.metric}", observed=event.quantity, baseline=round(usual, 3), unit=unit,
        text=f"{event.metric} of {event.quantity:,.4g} {unit} in one report, {ratio:.2g}x this customer's usual"
        f" {usual:,.4g} ({direction}).",
    )
    return build_trigger(
        USAGE_ANOMALY, customer_id=state.customer_id, account_id=state.account_id,
        episode=f"usage-{direction}-{event.metric}-{ts:.3f}", fired_at=ts, ttl_seconds=config.trigger_ttl_seconds,
        scores={"anomaly": abs(z), "usage_ratio": ratio}, reasons=[reason],
        context={"metric": event.metric, "direction": direction, "unit": unit},
    )


def _check_burst(state: CustomerState, event: ErrorEvent, ts: float, config: EngineConfig) -> Trigger | None:
    bucket = math.floor(ts / config.bucket_seconds)
    state.errors.add(bucket)
    count = state.errors.count(bucket)
    threshold = det.burst_threshold(state, config)
    if state.burst_bucket is not None or count < threshold:
        return None
    state.burst_bucket, state.quiet_buckets = bucket, 0
    mean, _ = det.error_baseline(state, config)
    score = det.burst_score(count, state, config)
    reason = Reason(
        signal="errors_per_bucket", observed=count, baseline=round(mean, 4),
        unit=f"errors/{config.bucket_seconds}s",
        text=f"{count:g} errors in {config.bucket_seconds}s (latest {event.code}, {event.severity});"
        f" this customer usually sees {mean:.2g}.",
    )
    return build_trigger(
        ERROR_BURST, customer_id=state.customer_id, account_id=state.account_id,
        episode=f"burst-{bucket * config.bucket_seconds}", fired_at=ts,
        ttl_seconds=config.trigger_ttl_seconds, scores={"anomaly": score, "error_burst_z": score},
        reasons=[reason], context={"error_code": event.code, "severity": event.severity},
    )


def _silence_trigger(state: CustomerState, now: float, config: EngineConfig) -> Trigger:
    assert state.last_seen is not None and state.deadline is not None
    fired_at = state.deadline
    silence = fired_at - state.last_seen
    usual = det.typical_gap(state, config)
    probability = det.silence_probability(silence, state, config)
    reason = Reason(
        signal="silence_seconds", observed=round(silence, 3), baseline=round(usual, 3),
        unit="seconds",
        text=f"No activity for {_human(silence)}; this customer usually returns within {_human(usual)}"
        f" ({state.visits} visits seen).",
    )
    return build_trigger(
        SILENCE_DROPOFF, customer_id=state.customer_id, account_id=state.account_id,
        episode=f"silence-{state.last_seen:.3f}", fired_at=fired_at,
        ttl_seconds=config.trigger_ttl_seconds, scores={"dropoff": probability},
        reasons=[reason], context={"last_seen_at": _iso(state.last_seen), "visits": state.visits},
    )


def _human(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _iso(epoch: float) -> str:
    return utc(epoch).isoformat()
