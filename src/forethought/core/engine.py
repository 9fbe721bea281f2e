"""The engine's entry points: every driver (worker, replay, tests) calls these and only these.

``process`` folds one event into a customer's state; ``tick`` advances a customer to a point
in event time (silence, lifecycle looks, label horizons and snapshots, deferred triggers and
re-engagement windows can only be seen this way; :mod:`forethought.core.due` says which look is
due when, so time costs only what is due); ``observe_profile`` and ``observe_outcome`` take the other
inbound records. Each returns a :class:`Step`: the new state, the triggers to publish, the
policy's decisions and what was observed. Detectors emit detections; playbooks and the policy
(:mod:`forethought.core.policy`) turn them into triggers. No I/O, no wall clock.

>>> from datetime import datetime, timezone
>>> from forethought.contracts.events import ErrorEvent
>>> config = EngineConfig(bucket_seconds=10, burst_min_errors=3)
>>> state, fired = None, []
>>> for i in range(3):
...     event = ErrorEvent(event_id=f"e{i}", customer_id="c1", code="E42",
...         occurred_at=datetime(2026, 11, 22, 12, 0, i, tzinfo=timezone.utc))
...     step = process(state, event, config)
...     state, fired = step.state, fired + list(step.triggers)
>>> [(t.playbook, t.reasons[0].observed, t.why.checks[1]) for t in fired]   # no playbook file: pass-through
[('error_burst', 3.0, 'pass-through: no policy')]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from forethought.contracts.events import ErrorEvent, FeatureUsed, InboundEvent, Usage
from forethought.contracts.records import Outcome, Profile, Trigger
from forethought.core import behaviour, detect, labels, snapshots
from forethought.core import detectors as det
from forethought.core import due as looks
from forethought.core.config import EngineConfig
from forethought.core.models import PartitionModels
from forethought.core.policy import decide as policy
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Rules, builtin_rules
from forethought.core.signals import Detection
from forethought.core.state import HOUR, CustomerState

DAY = 86_400.0
NO_PROFILE = ProfileState()
ENGAGED_OUTCOMES = frozenset({"opened", "clicked", "converted"})


@dataclass(frozen=True, slots=True)
class Observation:
    """Something a driver may count or log: ``kind`` plus a few details."""

    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    """The result of one entry-point call. ``state`` is None when the customer was evicted;
    ``profile`` is set when the profile table must be updated."""

    state: CustomerState | None
    triggers: tuple[Trigger, ...] = ()
    observations: tuple[Observation, ...] = ()
    shadow: tuple[Trigger, ...] = ()
    decisions: tuple[policy.Decision, ...] = ()
    profile: ProfileState | None = None

    def then(self, later: Step) -> Step:
        """This step followed by ``later`` (whose state wins)."""
        return Step(later.state, self.triggers + later.triggers, self.observations + later.observations,
                    self.shadow + later.shadow, self.decisions + later.decisions, later.profile or self.profile)


def process(state: CustomerState | None, event: InboundEvent, config: EngineConfig, rules: Rules | None = None,
            profile: ProfileState = NO_PROFILE, models: PartitionModels | None = None) -> Step:
    """Fold ``event`` into ``state`` (None for a new customer).

    Whatever came due before this event (a silence, a daily check, a deferred trigger) happens
    first, exactly as a timer would have done it, so results never depend on when the timer ran.
    ``models`` are the customer's partition's models (None: no learned scores, no labels).
    """
    rules = rules or builtin_rules()
    ts = event.epoch
    earlier = tick(state, ts, config, rules, profile, models) if state is not None else Step(None)
    state = earlier.state or _new(event.customer_id, ts, config)
    if state.remember(event.event_id, config.recent_ids):
        return earlier.then(Step(state, observations=(Observation("duplicate", {"event_id": event.event_id}),)))
    return earlier.then(_fold(state, event, ts, config, rules, profile, models))


def tick(state: CustomerState, now: float, config: EngineConfig, rules: Rules | None = None,
         profile: ProfileState = NO_PROFILE, models: PartitionModels | None = None) -> Step:
    """Advance ``state`` to event time ``now``: everything due fires in time order; evict when idle."""
    rules = rules or builtin_rules()
    idle_since = state.last_seen if state.last_seen is not None else state.created
    if idle_since is not None and now - idle_since >= config.idle_ttl_seconds:
        return Step(None, observations=(Observation("evicted", {"idle": now - idle_since}),))
    step = Step(state)
    while (due := _earliest_due(state)) is not None and due <= now:
        step = step.then(_fire_due(state, due, config, rules, profile, models))
    return step


def observe_profile(state: CustomerState | None, held: ProfileState, profile: Profile, now: float,
                    config: EngineConfig) -> Step:
    """A profile arrived at the driver's event time ``now``: it updates the profile table, and a
    customer seen for the first time gets a state, so lifecycle playbooks (onboarding...) can act
    before any event. The profile's own ``updated_at`` orders profiles, never the clock. A new
    profile brings the next look forward to the next daily slot, where its lifecycle dates are read."""
    updated = held.with_profile(profile)
    state = state or _new(profile.customer_id, now, config)
    if updated is not held:
        _look_by(state, looks.slot_after(state.customer_id, now))
    return Step(state, profile=updated)


def observe_outcome(state: CustomerState | None, held: ProfileState, outcome: Outcome, config: EngineConfig,
                    rules: Rules | None = None, models: PartitionModels | None = None) -> Step:
    """A sender's outcome: an unsubscribe stops the channel at once; a failed or bounced
    delivery falls back to the next preferred channel the policy allows; an engaged outcome
    (opened, clicked, converted) is a label: the customer came back, even before an event shows it."""
    rules = rules or builtin_rules()
    updated = held.after_outcome(outcome)
    seen: tuple[Observation, ...] = (Observation("outcome", {"status": outcome.status, "channel": outcome.channel}),)
    if state is None:
        return Step(None, observations=seen, profile=updated if updated is not held else None)
    out, now = policy.Verdicts(), outcome.occurred_at.timestamp()
    config = _prior_at(config, models, now)
    if outcome.status in ("failed", "bounced"):
        policy.fallback(_context(state, updated, rules, now, config, models), outcome.trigger_id, outcome.channel,
                        now, out)
    engaged = outcome.status in ENGAGED_OUTCOMES
    if engaged and models is not None and (label := labels.on_activity(state, now, config, models)) is not None:
        seen += (_label(label, models),)
        _look_by(state, looks.slot_after(state.customer_id, now))  # the next snapshot
    return _step(state, out, seen, profile=updated if updated is not held else None)


def next_due(state: CustomerState, config: EngineConfig) -> float | None:
    """The event time at which :func:`tick` has something to do for this customer."""
    due = _earliest_due(state)
    idle_since = state.last_seen if state.last_seen is not None else state.created
    evict = None if idle_since is None else idle_since + config.idle_ttl_seconds
    return min((t for t in (due, evict) if t is not None), default=None)


def explain(state: CustomerState, now: float, config: EngineConfig,
            models: PartitionModels | None = None) -> dict[str, Any]:
    """Scores, features, baselines and the policy's memory as of ``now``, for people and web views."""
    configured, config = config, _prior_at(config, models, now)
    facts = detect.facts(state, now, config, models)
    features = facts["features"]
    return {
        "customer_id": state.customer_id, "as_of": now, "scores": facts["scores"],
        "silence_seconds": features["silence_seconds"] or 0.0, "typical_gap_seconds": features["typical_gap_seconds"],
        "silence_threshold_seconds": features["silence_threshold_seconds"], "silence_deadline": state.deadline,
        "population_prior": {"typical_gap_seconds": round(config.prior_gap_seconds, 3),
                             "log_sd": config.prior_log_sd,
                             "learned": config is not configured},
        "errors_in_current_bucket": features["errors_in_current_bucket"],
        "error_baseline_per_bucket": det.error_baseline(state, config)[0],
        "error_burst_threshold": det.burst_threshold(state, config), "in_error_burst": state.burst_bucket is not None,
        "events": state.events, "late_events": state.late, "visits": state.visits, "by_type": dict(state.by_type),
        "errors_by_code": dict(state.error_codes), "errors_by_severity": dict(state.error_severity),
        "features_used": {name: {"first": t[0], "last": t[1]} for name, t in state.features.items()},
        "sessions": features["sessions"], "session_seconds": features["session_seconds"],
        "events_last_hour": features["events_last_hour"], "events_last_24_hours": features["events_last_24_hours"],
        "events_last_7_days": features["events_last_7_days"],
        "usual_events_per_7_days": features["usual_events_per_7_days"],
        "policy": {
            "sent": [{"at": s.at, "playbook": s.playbook, "channel": s.channel} for s in state.policy.sent],
            "deferred": [{"release_at": p.release_at, "trigger_id": p.trigger["trigger_id"],
                          "playbook": p.trigger["playbook"]} for p in state.policy.pending],
            "measuring": [{"playbook": w.playbook, "group": w.group, "until": w.until} for w in state.policy.watch],
            "next_daily_check": state.daily_at,  # the next look (core.due): not necessarily tomorrow
        },
        "learned": _learned_view(state, models),
        "behaviour": _behaviour_view(state, now, config, models),
    }


def _new(customer_id: str, now: float, config: EngineConfig) -> CustomerState:
    state = CustomerState.new(customer_id, config)
    state.created = now
    state.daily_at = looks.slot_after(customer_id, now)
    return state


def _look_by(state: CustomerState, at: float) -> None:
    """Make sure a look happens no later than ``at`` (a daily slot)."""
    if state.daily_at is None or at < state.daily_at:
        state.daily_at = at


def _earliest_due(state: CustomerState) -> float | None:
    due = state.deadline
    for t in (state.daily_at, state.policy.next_due()):
        if t is not None and (due is None or t < due):
            due = t
    return due


def _fire_due(state: CustomerState, due: float, config: EngineConfig, rules: Rules, profile: ProfileState,
              models: PartitionModels | None) -> Step:
    """Everything due at ``due``: re-engagement windows end, deferred triggers go, silence, a look."""
    config = _prior_at(config, models, due)
    observations = tuple(Observation("not_reengaged", {"playbook": w.playbook, "group": w.group})
                         for w in state.policy.watch if w.until <= due)
    state.policy.watch = [w for w in state.policy.watch if w.until > due]
    out = policy.Verdicts()
    if any(p.release_at <= due for p in state.policy.pending):
        policy.release(_context(state, profile, rules, due, config, models), due, out)
    detections: list[Detection] = []
    if state.deadline is not None and state.deadline <= due:
        detections.append(detect.silence(state, config))
        state.silence_fired_for, state.deadline = state.last_seen, None
    look = state.daily_at is not None and state.daily_at <= due
    daily = look and bool(rules.daily_bounds) and looks.lifecycle_open(rules, profile, due)
    found: dict[str, Any] | None = None
    if look:
        seen, found = _look_labels(state, due, config, models, full=daily or bool(detections))
        observations += seen
        if models is not None and config.prior_learned and state.gaps.n >= config.prior_min_gaps:
            models.learn_population(state.gaps.mean, state.gaps.var, due)
    if detections or daily:
        ctx = _context(state, profile, rules, due, config, models, found)
        if daily:
            detections.append(detect.daily(ctx.env["features"], due))
        policy.decide(detections, ctx, out)
    if look:
        state.daily_at = looks.next_look(state, due, config, rules, profile, models)
    return _step(state, out, observations)


def _look_labels(state: CustomerState, due: float, config: EngineConfig, models: PartitionModels | None,
                 full: bool) -> tuple[tuple[Observation, ...], dict[str, Any] | None]:
    """A look's part in learning: a horizon passed (label 1), then a new snapshot. The facts (all of
    them when ``full``: playbooks run at this look; else only the snapshot's) and the learned score
    are built once; full facts are handed on to the playbooks."""
    if models is None:
        return (), None
    label = labels.on_check(state, due, config, models)
    seen = () if label is None else (_label(label, models),)
    if state.last_seen is None:
        return seen, None
    found = detect.facts(state, due, config) if full else detect.snapshot_facts(state, due, config)
    data = snapshots.codes(found)
    taken = labels.take_snapshot(state, due, data)
    scores = found["scores"]
    scores["dropoff_learned"] = models.dropoff(snapshots.from_codes(data)) if models.warm else None
    detail = {"at": due, "silence_seconds": found["features"]["silence_seconds"], "dropoff": scores["dropoff"],
              "dropoff_learned": scores["dropoff_learned"], "snapshot": taken}
    return (*seen, Observation("daily_scores", detail)), found if full else None


def _label(label: labels.Label, models: PartitionModels) -> Observation:
    return Observation("label", {"model": "dropoff", "label": label.label, "taken_at": label.taken_at,
                                 "partition": models.partition, "labels_seen": models.labels})


def _learned_view(state: CustomerState, models: PartitionModels | None) -> dict[str, Any]:
    """The learned model's side of :func:`explain`: cold or warm, and the pending snapshot."""
    pending = None
    if state.snapshot is not None:
        at, x = snapshots.decode(state.snapshot)
        pending = {"taken_at": at, "encoded": state.snapshot, "features": {k: round(v, 4) for k, v in x.items()}}
    if models is None:
        return {"model": None, "pending_snapshot": pending}
    return {"model": {"partition": models.partition, "labels_seen": models.labels, "dropped": models.dropped,
                      "warm": models.warm, "origin": models.origin, "unsaved_labels": models.unsaved},
            "pending_snapshot": pending}


def _prior_at(config: EngineConfig, models: PartitionModels | None, at: float) -> EngineConfig:
    """``config`` with the partition's learned population prior at ``at``, when there is one."""
    return config if models is None else models.config_at(config, at)


def _behaviour_view(state: CustomerState, now: float, config: EngineConfig,
                    models: PartitionModels | None) -> dict[str, Any]:
    """The multivariate detector's side of :func:`explain`: the partition's reference and threshold."""
    run = None if not state.odd else {"first_bucket_start": state.odd[0] * config.bucket_seconds,
                                      "last_bucket_start": state.odd[1] * config.bucket_seconds}
    if models is None:
        return {"anomalous_run": run, "reference_size": None, "threshold": None, "origin": None}
    trees = models.behaviour
    return {"anomalous_run": run, "reference_size": trees.reference_size(now), "threshold": trees.threshold(now),
            "origin": models.behaviour_origin}


def _fold(state: CustomerState, event: InboundEvent, ts: float, config: EngineConfig, rules: Rules,
          profile: ProfileState, models: PartitionModels | None) -> Step:
    config = _prior_at(config, models, ts)
    state.created = state.created or ts  # a state written before ``created`` existed
    state.events += 1
    state.by_type[event.type] = state.by_type.get(event.type, 0) + 1
    state.account_id = event.account_id or state.account_id
    is_error = isinstance(event, ErrorEvent)
    state.error_total += int(is_error)
    if state.last_seen is not None and ts < state.last_seen - config.allowed_lateness_seconds:
        state.late += 1
        return Step(state, observations=(Observation("late", {"lag": state.last_seen - ts}),))
    observations = () if is_error else _reengaged(state, ts)
    if models is not None and (label := labels.on_activity(state, ts, config, models)) is not None:
        observations += (_label(label, models),)
    detections = [detect.advance_days(state, ts, config), _record_activity(state, event, ts, config, models)]
    if isinstance(event, ErrorEvent):  # is_error, spelled so the type checker narrows ``event``
        detections.append(detect.check_burst(state, event, ts, config))
    elif isinstance(event, Usage):
        detections.append(detect.check_usage(state, event, ts, config))
    elif isinstance(event, FeatureUsed):
        detections.append(detect.check_feature(state, event, ts, config))
    state.deadline = det.silence_deadline(state, config)
    out, found = policy.Verdicts(), [d for d in detections if d is not None]
    if found:
        policy.decide(found, _context(state, profile, rules, ts, config, models), out)
    state.daily_at = looks.next_look(state, ts, config, rules, profile, models)
    return _step(state, out, observations)


def _reengaged(state: CustomerState, ts: float) -> tuple[Observation, ...]:
    """The customer came back: every decision being measured counts as re-engaged."""
    back = [w for w in state.policy.watch if w.since < ts <= w.until]
    state.policy.watch = [w for w in state.policy.watch if w not in back]
    return tuple(Observation("reengaged", {"playbook": w.playbook, "group": w.group}) for w in back)


def _context(state: CustomerState, profile: ProfileState, rules: Rules, now: float, config: EngineConfig,
             models: PartitionModels | None = None, found: dict[str, Any] | None = None) -> policy.Context:
    """What playbooks see; ``found``: :func:`detect.facts` as of ``now`` when already built."""
    env = {**(found or detect.facts(state, now, config, models)), "profile": profile.facts(now)}
    return policy.Context(state.customer_id, state.account_id, state.policy, profile, rules, env)


def _step(state: CustomerState, out: policy.Verdicts, observations: tuple[Observation, ...] = (),
          profile: ProfileState | None = None) -> Step:
    return Step(state, tuple(out.live), observations, tuple(out.shadow), tuple(out.decisions), profile)


def _record_activity(state: CustomerState, event: InboundEvent, ts: float, config: EngineConfig,
                     models: PartitionModels | None) -> Detection | None:
    """Visits, sessions and the bucket rings; the newest activity bucket closes when a later one begins."""
    _record_visit(state, event, ts, config)
    bucket, head = math.floor(ts / config.bucket_seconds), state.activity.head
    closed = None
    if 0 <= head < bucket and state.activity.count(head) > 0:
        closed = behaviour.close_bucket(state, head, ts, config, models)
    state.activity.add(bucket)
    state.hours.add(math.floor(ts / HOUR))
    old_head = state.errors.head
    folded = state.errors.advance(bucket, max_closed=config.ring_buckets)
    skipped = 0 if old_head < 0 else max(0, bucket - old_head - len(folded))
    det.fold_closed_error_buckets(state, folded, skipped, config)
    return closed


def _record_visit(state: CustomerState, event: InboundEvent, ts: float, config: EngineConfig) -> None:
    """A gap longer than ``visit_gap_seconds`` starts a visit (a session); so does a ``session_start`` event."""
    if state.last_seen is None:
        state.first_seen, state.last_seen, state.visits, state.session_start = ts, ts, 1, math.floor(ts)
    elif ts > state.last_seen:
        gap = ts - state.last_seen
        if gap > config.visit_gap_seconds:
            state.visits += 1
            state.gaps = state.gaps.update(math.log(max(gap, 1.0)), config.gap_alpha).rounded()
            det.note_gap(state, gap, ts, config)
            state.session_start = math.floor(ts)  # whole seconds: enough for sessions, shorter in state
        state.last_seen = ts
    if event.type == "session_start" and ts > (state.session_start or 0.0):
        state.session_start = math.floor(ts)
