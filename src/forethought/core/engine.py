"""The engine's entry points: every driver (worker, replay, tests) calls these and only these.

``process`` folds one event into a customer's state (the shared windows here, the rest by each
detector of the registry through its hooks, :mod:`forethought.core.plugin`); ``tick`` advances a customer to a point
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
from dataclasses import dataclass, replace
from typing import Any

from forethought.contracts.events import ErrorEvent, InboundEvent
from forethought.contracts.records import Outcome, Profile, Trigger
from forethought.core import due as looks
from forethought.core.bandit import Bandits
from forethought.core.config import EngineConfig
from forethought.core.detectors import active_hours
from forethought.core.insight import explain, facts  # re-exported: callers read them from the engine
from forethought.core.ledger import PolicyLedger, Watch
from forethought.core.models import PartitionModels
from forethought.core.plugin import Look, Moment
from forethought.core.policy import decide as policy
from forethought.core.policy import rewards
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Rules, builtin_rules
from forethought.core.policy.sendwindow import waits_for_activity
from forethought.core.sendtime import Activity
from forethought.core.signals import Observation
from forethought.core.state import HOUR, CustomerState

__all__ = ["Step", "explain", "facts", "next_due", "observe_outcome", "observe_profile", "process", "resume", "tick"]

DAY = 86_400.0
NO_PROFILE = ProfileState()
ENGAGED_OUTCOMES = frozenset({"opened", "clicked", "converted"})


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
    earlier = None if state is None else _tick(state, ts, config, rules, profile, models)
    if earlier is not None:
        state = earlier.state
    if state is None:
        state = _new(event.customer_id, ts, config)
    if state.remember(event.event_id, config.windows.recent_ids):
        step = Step(state, observations=(Observation("duplicate", {"event_id": event.event_id}),))
    else:
        step = _fold(state, event, ts, config, rules, profile, models)
    return step if earlier is None else earlier.then(step)


def tick(state: CustomerState, now: float, config: EngineConfig, rules: Rules | None = None,
         profile: ProfileState = NO_PROFILE, models: PartitionModels | None = None) -> Step:
    """Advance ``state`` to event time ``now``: everything due fires in time order; evict when idle."""
    return _tick(state, now, config, rules or builtin_rules(), profile, models) or Step(state)


def resume(state: CustomerState, event: InboundEvent, config: EngineConfig, rules: Rules | None = None,
           profile: ProfileState = NO_PROFILE, models: PartitionModels | None = None) -> Step:
    """:func:`process` for a state revived from an idle customer's summary (:mod:`forethought.core.summary`):
    no tick first (nothing is due on it, and its idle time would evict it again)."""
    state.remember(event.event_id, config.windows.recent_ids)
    return _fold(state, event, event.epoch, config, rules or builtin_rules(), profile, models)


def _tick(state: CustomerState, now: float, config: EngineConfig, rules: Rules, profile: ProfileState,
          models: PartitionModels | None) -> Step | None:
    """:func:`tick`, or None when nothing was due by ``now`` (the state is unchanged): the common
    case of an event, which then costs no :class:`Step` of its own."""
    idle_since = state.last_seen if state.last_seen is not None else state.created
    if idle_since is not None and now - idle_since >= config.windows.idle_ttl_seconds:
        pulls = state.policy.pulls
        ended = rewards.on_due(_own_ledger(state, state.policy), math.inf, rules, _bandits(models)) if pulls else ()
        return Step(None, observations=(Observation("evicted", {"idle": now - idle_since}), *ended))
    due = _earliest_due(state, config)
    if due is None or due > now:
        return None
    step = _fire_due(state, due, config, rules, profile, models)  # usually the only one
    due = _earliest_due(state, config)
    while due is not None and due <= now:
        step = step.then(_fire_due(state, due, config, rules, profile, models))
        due = _earliest_due(state, config)
    return step


def observe_profile(state: CustomerState | None, held: ProfileState, profile: Profile, now: float,
                    config: EngineConfig) -> Step:
    """A profile arrived at the driver's event time ``now``: it updates the profile table, and a
    customer seen for the first time gets a state, so lifecycle playbooks (onboarding...) can act
    before any event. The profile's own ``updated_at`` orders profiles, never the clock. A profile
    new to the customer's state brings the next look forward to the next daily slot, where its
    lifecycle dates are read, and goes to the detectors (``on_profile``). New to the state, not to
    the table: after a crash the table can hold a newer profile than the records run again, and
    each of them must still reach the state as it did the first time (``state.profile_at``)."""
    updated = held.with_profile(profile)
    state = state or _new(profile.customer_id, now, config)
    at = profile.updated_at.timestamp()
    if state.profile_at is None or at >= state.profile_at:
        state.profile_at = at
        looks.look_by(state, looks.slot_after(state.customer_id, now))
        m = Moment(now, config, None, None, updated if updated.profile is profile else replace(held, profile=profile))
        for detector, settings in config.plan:
            detector.on_profile(state, settings, m)
    return Step(state, profile=updated)


def observe_outcome(state: CustomerState | None, held: ProfileState, outcome: Outcome, config: EngineConfig,
                    rules: Rules | None = None, models: PartitionModels | None = None) -> Step:
    """A sender's outcome: an unsubscribe stops the channel at once; a failed or bounced
    delivery falls back to the next preferred channel the policy allows; an engaged outcome
    (opened, clicked, converted) goes to the detectors (the learned model takes it as a label)."""
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
    if state.policy.pulls:  # a variant's reward (core.bandit)
        seen += rewards.on_outcome(state.policy, outcome.trigger_id, outcome.status, now, rules, _bandits(models))
    if outcome.status in ENGAGED_OUTCOMES:
        m = Moment(now, config, models, rules, updated)
        for detector, settings in config.plan:
            detector.on_engaged(state, settings, m)
        seen += tuple(m.observations)
    return _step(state, out, seen, profile=updated if updated is not held else None)


def next_due(state: CustomerState, config: EngineConfig) -> float | None:
    """The event time at which :func:`tick` has something to do for this customer."""
    due = _earliest_due(state, config)
    idle_since = state.last_seen if state.last_seen is not None else state.created
    evict = None if idle_since is None else idle_since + config.windows.idle_ttl_seconds
    return min((t for t in (due, evict) if t is not None), default=None)


def _new(customer_id: str, now: float, config: EngineConfig) -> CustomerState:
    state = CustomerState.new(customer_id, config)
    state.created = now
    state.daily_at = looks.slot_after(customer_id, now)
    return state


def _earliest_due(state: CustomerState, config: EngineConfig) -> float | None:
    due = state.daily_at
    held = state.policy.next_due()
    if held is not None and (due is None or held < due):
        due = held
    for detector, settings in config.due_hooks:
        t = detector.due(state, settings)
        if t is not None and (due is None or t < due):
            due = t
    return due


def _fire_due(state: CustomerState, due: float, config: EngineConfig, rules: Rules, profile: ProfileState,
              models: PartitionModels | None) -> Step:
    """Everything due at ``due``: re-engagement windows end, deferred triggers go, each detector's own
    due time (a silence), then a look when one is due."""
    config, shared = _prior_at(config, models, due), state.policy
    observations: tuple[Observation, ...] = ()
    if shared.watch and (ended := [w for w in shared.watch if w.until <= due]):
        observations = tuple(Observation("not_reengaged", {"playbook": w.playbook, "group": w.group}) for w in ended)
        ledger = _own_ledger(state, shared)
        ledger.watch = [w for w in ledger.watch if w.until > due]
        _learn_uplift(models, ended, reengaged=False)
    if shared.pulls:
        observations += rewards.on_due(_own_ledger(state, shared), due, rules, _bandits(models))
    out = policy.Verdicts()
    if shared.pending and any(p.release_at <= due for p in shared.pending):
        _own_ledger(state, shared)
        policy.release(_held_context(state, profile, rules, models), due, out)
    m = Moment(due, config, models, rules, profile)
    for detector, settings in config.due_hooks:
        detector.on_due(state, due, settings, m)
    look = None
    if state.daily_at is not None and state.daily_at <= due:
        look = Look(daily=False, build=lambda brief: facts(state, due, config, None, brief), full=bool(m.detections))
        for detector, settings in config.look_actions:
            detector.on_look(state, settings, m, look)
    if m.detections:
        found = look.found if look is not None and look.full else None
        _own_ledger(state, shared)
        policy.decide(m.detections, _context(state, profile, rules, due, config, models, found), out)
    if look is not None:
        state.daily_at = looks.next_look(state, due, m)
    return _step(state, out, observations + tuple(m.observations))


def _own_ledger(state: CustomerState, shared: PolicyLedger) -> PolicyLedger:
    """The ledger a tick may change: a copy of ``shared`` (the one the tick began with) the first
    time. A runtime's tick runs on a draft that shares its ledger with the live state
    (``CustomerState.draft(tick=True)``), so a tick that raises after changing it leaves no trace."""
    if state.policy is shared:
        state.policy = shared.copy()
    return state.policy


def _prior_at(config: EngineConfig, models: PartitionModels | None, at: float) -> EngineConfig:
    """``config`` with the partition's learned population prior at ``at``, when there is one."""
    return config if models is None else models.config_at(config, at)


def _fold(state: CustomerState, event: InboundEvent, ts: float, config: EngineConfig, rules: Rules,
          profile: ProfileState, models: PartitionModels | None) -> Step:
    """The shared windows move to ``ts`` between the detectors' ``before_event`` and ``on_event`` hooks."""
    config = _prior_at(config, models, ts)
    state.created = state.created or ts  # a state written before ``created`` existed
    state.events += 1
    state.by_type[event.type] = state.by_type.get(event.type, 0) + 1
    state.account_id = event.account_id or state.account_id
    is_error = isinstance(event, ErrorEvent)
    state.error_total += int(is_error)
    if state.last_seen is not None and ts < state.last_seen - config.windows.allowed_lateness_seconds:
        state.late += 1
        return Step(state, observations=(Observation("late", {"lag": state.last_seen - ts}),))
    observations = () if is_error else _reengaged(state, ts, models)
    if state.policy.pulls and not is_error:
        observations += rewards.on_activity(state.policy, ts, rules, _bandits(models))
    m = Moment(ts, config, models, rules, profile)
    for detector, settings in config.before_hooks:
        detector.before_event(state, event, ts, settings, m)
    _record_activity(state, event, ts, config)
    for detector, settings in config.event_hooks_by_type.get(event.type, config.event_hooks):
        detector.on_event(state, event, ts, settings, m)
    waiting = _back_for_a_held_trigger(state, ts, is_error)
    if not m.detections and not waiting:  # the common case: no policy pass, no verdicts to collect
        state.daily_at = looks.next_look(state, ts, m)
        return Step(state, (), observations + tuple(m.observations) if m.observations else observations)
    out = policy.Verdicts()
    if waiting:
        policy.release_active(_held_context(state, profile, rules, models), ts, out)
    if m.detections:
        policy.decide(m.detections, _context(state, profile, rules, ts, config, models), out)
    state.daily_at = looks.next_look(state, ts, m)
    return _step(state, out, observations + tuple(m.observations))


def _reengaged(state: CustomerState, ts: float, models: PartitionModels | None = None) -> tuple[Observation, ...]:
    """The customer came back: every decision being measured counts as re-engaged."""
    if not state.policy.watch:
        return ()
    back = [w for w in state.policy.watch if w.since < ts <= w.until]
    state.policy.watch = [w for w in state.policy.watch if w not in back]
    _learn_uplift(models, back, reengaged=True)
    return tuple(Observation("reengaged", {"playbook": w.playbook, "group": w.group}) for w in back)


def _learn_uplift(models: PartitionModels | None, resolved: list[Watch], reengaged: bool) -> None:
    """Watches whose label is now known teach their playbook's uplift estimator (the label only
    exists once the customer came back or the window closed: no look-ahead)."""
    if models is not None:
        for w in resolved:
            models.learn_uplift(w.playbook, w.group, w.x, reengaged)


def _context(state: CustomerState, profile: ProfileState, rules: Rules, now: float, config: EngineConfig,
             models: PartitionModels | None = None, found: dict[str, Any] | None = None) -> policy.Context:
    """What playbooks see; ``found``: :func:`facts` as of ``now`` when already built."""
    env = {**(found or facts(state, now, config, models)), "profile": profile.facts(now)}
    return _held_context(state, profile, rules, models, env)


def _held_context(state: CustomerState, profile: ProfileState, rules: Rules, models: PartitionModels | None,
                  env: dict[str, Any] | None = None) -> policy.Context:
    """The policy's context; without ``env`` what releasing held triggers needs (no facts: their
    conditions were judged when they were decided)."""
    activity = Activity(active_hours.seen(state), None if models is None else models.hours)
    return policy.Context(state.customer_id, state.account_id, state.policy, profile, rules, env or {},
                          uplift=None if models is None else models.uplift, activity=activity,
                          bandits=_bandits(models))


def _back_for_a_held_trigger(state: CustomerState, ts: float, is_error: bool) -> bool:
    """Whether this event begins a visit (a session) of a customer with a trigger held for their likely
    active hour (send windows, core.sendtime): they are active now, so it goes now."""
    pending = state.policy.pending
    return (bool(pending) and not is_error and state.session_start == math.floor(ts)
            and any(waits_for_activity(p.trigger) for p in pending))


def _bandits(models: PartitionModels | None) -> Bandits | None:
    return None if models is None else models.bandits


def _step(state: CustomerState, out: policy.Verdicts, observations: tuple[Observation, ...] = (),
          profile: ProfileState | None = None) -> Step:
    if out.decisions:  # kept (bounded) for "why (not)?"
        state.policy.note(out.decisions)
    if out.observations:
        observations += tuple(out.observations)
    return Step(state, tuple(out.live), observations, tuple(out.shadow), tuple(out.decisions), profile)


def _record_activity(state: CustomerState, event: InboundEvent, ts: float, config: EngineConfig) -> None:
    """Visits (a gap longer than ``visit_gap_seconds`` starts one; so does ``session_start``), sessions,
    ``last_seen`` and the activity and hour rings."""
    if state.last_seen is None:
        state.first_seen, state.last_seen, state.visits, state.session_start = ts, ts, 1, math.floor(ts)
    elif ts > state.last_seen:
        if ts - state.last_seen > config.windows.visit_gap_seconds:
            state.visits += 1
            state.session_start = math.floor(ts)  # whole seconds: enough for sessions, shorter in state
        state.last_seen = ts
    if event.type == "session_start" and ts > (state.session_start or 0.0):
        state.session_start = math.floor(ts)
    state.activity.add(math.floor(ts / config.windows.bucket_seconds))
    state.hours.add(math.floor(ts / HOUR))
