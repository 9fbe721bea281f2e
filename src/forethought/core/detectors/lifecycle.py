"""Lifecycle: the features a customer has used, first uses, and the daily look for lifecycle playbooks.

The slice keeps the first and last use of the first ``feature_slots`` features a customer used
(whole seconds). A first use fires ``feature_first_use`` (welcome tips); playbooks read
``features.used.<name>``, ``features.days_since_used.<name>`` and ``features.features_used``.

A playbook that listens to ``daily`` is evaluated at the customer's daily looks
(:mod:`forethought.core.due`), but only while its lifecycle bounds can hold for the customer's
profile (:mod:`forethought.core.policy.lifecycle`): outside them the condition is false whatever
the customer does, so no look is due for it.

>>> from forethought.core.config import EngineConfig
>>> from forethought.core.state import CustomerState
>>> state = CustomerState.new("c1", EngineConfig())
>>> of(state).features["export"] = [1_790_000_000.0, 1_790_086_400.0]
>>> found = {"scores": {}, "features": {}}
>>> Lifecycle().facts(state, 1_790_172_800.0, LifecycleSettings(), None, found, brief=False)
>>> found["features"]["features_used"], found["features"]["days_since_used"]
(1, {'export': 1.0})
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from forethought.contracts.events import FeatureUsed
from forethought.contracts.records import Reason
from forethought.core.codec_kinds import TIMES
from forethought.core.due import slot_at_or_after
from forethought.core.plugin import NEVER, Detector, Look, Moment, Slice, check_positive
from forethought.core.signals import Detection
from forethought.core.state_codec import Field

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState

NAME = "lifecycle"
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    """Features followed per customer (the first few seen), for playbooks and reasons."""

    feature_slots: int = 16

    def __post_init__(self) -> None:
        check_positive(self)


@dataclass(slots=True)
class LifecycleState(Slice):
    """``{feature: [first use, last use]}`` in whole seconds."""

    KEY: ClassVar[str] = "f"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("features", TIMES, {}),)  # append only

    features: dict[str, list[float]] = field(default_factory=dict)

    def copy(self) -> LifecycleState:
        return LifecycleState({k: list(v) for k, v in self.features.items()})


def of(state: CustomerState) -> LifecycleState:
    """The customer's lifecycle slice."""
    return state.slices[NAME]  # type: ignore[no-any-return]


def seen(state: CustomerState) -> LifecycleState:
    """The slice to read only (:meth:`~forethought.core.state.CustomerState.peek`: no draft copy)."""
    return state.peek(NAME)  # type: ignore[no-any-return]


class Lifecycle(Detector):
    """Fires ``feature_first_use``, and ``daily`` at the looks where a lifecycle playbook may hold."""

    name: ClassVar[str] = NAME
    Settings = LifecycleSettings
    State = LifecycleState
    signals = ("feature_first_use", "daily")
    features = ("features_used",)
    open_features = ("used", "days_since_used")
    event_types = frozenset({"feature_used"})  # on_event acts on these only
    look_cost = 1  # reads the profile's lifecycle dates for every playbook listening to daily

    def on_event(self, state: CustomerState, event: InboundEvent, ts: float, s: LifecycleSettings,
                 m: Moment) -> None:
        if isinstance(event, FeatureUsed):
            m.detect(check_feature(of(state), event, ts, s))

    def look_due(self, state: CustomerState, soon: float, s: LifecycleSettings, m: Moment) -> float:
        if m.rules is None or not m.rules.daily_bounds:
            return NEVER
        return _first_open_slot(state.customer_id, soon, m.rules, _profile(m))

    def on_look(self, state: CustomerState, s: LifecycleSettings, m: Moment, look: Look) -> None:
        if m.rules is not None and m.rules.daily_bounds and lifecycle_open(m.rules, _profile(m), m.at):
            look.daily = look.full = True
            m.detect(daily(look.facts()["features"], m.at))

    def facts(self, state: CustomerState, now: float, s: LifecycleSettings, m: Moment, found: dict[str, Any],
              brief: bool) -> None:
        features, used = found["features"], seen(state).features
        features["features_used"] = len(used)
        if not brief:
            features["used"] = {name: True for name in used}
            features["days_since_used"] = {name: _days(times[1], now) for name, times in used.items()}

    def explain(self, state: CustomerState, now: float, s: LifecycleSettings, m: Moment) -> dict[str, Any]:
        return {"features_used": {name: {"first": t[0], "last": t[1]} for name, t in seen(state).features.items()}}


def check_feature(sl: LifecycleState, event: FeatureUsed, ts: float, s: LifecycleSettings) -> Detection | None:
    """The first use of a feature (welcome tips); later uses only refresh its last-use time."""
    seen, second = sl.features.get(event.feature), float(math.floor(ts))  # whole seconds keep state small
    if seen is not None:
        sl.features[event.feature] = [min(seen[0], second), max(seen[1], second)]
        return None
    if len(sl.features) >= s.feature_slots:
        return None  # the first few features of a customer are followed, to keep state small
    sl.features[event.feature] = [second, second]
    reason = Reason(signal="features_used", observed=len(sl.features), baseline=len(sl.features) - 1,
                    unit="features", text=f"First use of {event.feature}.")
    return Detection("feature_first_use", f"first-{event.feature}", ts, {}, (reason,), {"feature": event.feature})


def daily(seen: dict[str, Any], at: float) -> Detection:
    """The daily look at a customer (``seen``: the facts' features), for lifecycle playbooks."""
    reason = Reason(
        signal="events_per_7_days", observed=seen["events_last_7_days"],
        baseline=round(seen["usual_events_per_7_days"] or 0.0, 3), unit="events/7d",
        text=f"{seen['events_last_7_days']} events in the last 7 days; {seen['features_used']} features used so far.",
    )
    return Detection("daily", "daily", at, {}, (reason,), {})


def lifecycle_open(rules: Any, profile: Any, at: float) -> bool:
    """Whether any playbook listening to ``daily`` can hold at ``at`` for this profile."""
    signup, renewal = _dates(profile)
    for bounds in rules.daily_bounds:
        if bounds is None:
            return True
        start, end = bounds.span(signup, renewal)
        if start <= at <= end:
            return True
    return False


def _first_open_slot(cid: str, soon: float, rules: Any, profile: Any) -> float:
    """The first slot from ``soon`` at which a lifecycle playbook can hold (:data:`NEVER`: none)."""
    signup, renewal = _dates(profile)
    best = NEVER
    for bounds in rules.daily_bounds:
        if bounds is None:
            return soon
        start, end = bounds.span(signup, renewal)
        if end < soon or start > end or start >= best:
            continue  # over, never, or not before what is already due
        at = max(soon, slot_at_or_after(cid, start)) if start > soon else soon
        if at <= end and at < best:
            best = at
    return best


def _profile(m: Moment) -> Any:
    assert m.profile is not None, "the engine hands every look its customer's profile"
    return m.profile


def _dates(profile: Any) -> tuple[date | None, date | None]:
    p = profile.profile
    return (None, None) if p is None else (p.signup_date, p.renewal_date)


def _days(since: float | None, now: float) -> float | None:
    return None if since is None else round((now - since) / DAY, 4)
