"""Time costs only what is due: the engine looks at a customer only when something can change,
and that gives exactly what looking at every customer every day gave (triggers, decisions,
labels, the learned model and the states)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from forethought.contracts.events import ErrorEvent, FeatureUsed, PageView
from forethought.contracts.records import Profile
from forethought.core.config import EngineConfig
from forethought.core.engine import Step, next_due, observe_profile, process, tick
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Rules, builtin_rules
from forethought.core.runtime import Emission, PartitionRuntime
from forethought.core.state import CustomerState
from forethought.ops.playbooks import parse_rules
from forethought.ops.settings import DEFAULT_PLAYBOOKS_FILE

DAY = 86_400.0
T0 = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
CONFIG = EngineConfig(bucket_seconds=60, burst_min_errors=3, model_min_labels=20, look_scores=True)
SHIPPED = parse_rules(DEFAULT_PLAYBOOKS_FILE.read_text(), "playbooks.yaml")


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


def population(customers: int = 16, days: int = 70, seed: int = 5) -> list[tuple[float, Any]]:
    """Customers with profiles (signup, renewal), cadences from hours to weeks, and drop-offs."""
    rnd, records = random.Random(seed), []
    for c in range(customers):
        cid = f"cust-{c}"
        signup = date(2026, 3, 2) + timedelta(days=rnd.randrange(-20, 30))
        if c % 4:  # a quarter of the customers never get a profile
            renewal = signup + timedelta(days=rnd.choice([40, 55, 365]))
            records.append((T0 + rnd.uniform(0, 5 * DAY), Profile(
                customer_id=cid, updated_at=at(T0), signup_date=signup, renewal_date=renewal, consent={"email": True})))
        gap, stop, t, n = rnd.choice([3600, 8 * 3600, DAY, 4 * DAY, 9 * DAY]), rnd.uniform(10, days) * DAY, T0, 0
        while (t := t + rnd.expovariate(1 / gap)) < T0 + stop:
            kind, n = rnd.random(), n + 1
            common = {"event_id": f"{cid}-{n}", "customer_id": cid, "occurred_at": at(t)}
            if kind < 0.1:
                records.append((t, FeatureUsed(**common, feature=rnd.choice(["reports", "onboarding_completed", "x"]))))
            elif kind < 0.15:
                for k in range(4):
                    records.append((t + k, ErrorEvent(**{**common, "event_id": f"{cid}-{n}-e{k}"}, code="E1")))
            else:
                records.append((t, PageView(**common)))
    return sorted(records, key=lambda r: r[0])


@dataclass
class Run:
    """The runtime, driven as the worker's timer does: records in time order, time advanced at most an
    hour at a time (customers that learn from the shared model in one advance would otherwise learn
    in the order of their first due)."""

    config: EngineConfig
    rules: Rules
    seen: list[tuple[Any, ...]] = field(default_factory=list)
    looks: int = 0
    clock: float = T0
    runtime: PartitionRuntime = field(init=False)

    def __post_init__(self) -> None:
        self.runtime = PartitionRuntime(0, self.config, self.rules,
                                        PartitionModels(min_labels=CONFIG.model_min_labels))

    @property
    def states(self) -> dict[str, CustomerState]:
        return {s.customer_id: s for s in self.runtime.customers()}

    @property
    def models(self) -> PartitionModels:
        assert self.runtime.models is not None
        return self.runtime.models

    def feed(self, records: list[tuple[float, Any]], until: float) -> Run:
        for t, record in records:
            self.advance(t)
            self.record(self.runtime.feed(record))
        self.advance(until)
        return self

    def advance(self, now: float) -> None:
        while self.clock + 3600 < now:
            self.clock += 3600
            self.record(self.runtime.advance(self.clock))
        self.clock = max(self.clock, now)
        self.record(self.runtime.advance(now))

    def record(self, emitted: list[Emission]) -> None:
        for emission in emitted:
            assert emission.step is not None, emission.error
            self.apply(emission.customer_id, emission.step)

    def apply(self, cid: str, step: Step) -> None:
        self.seen += [("trigger", t.trigger_id, t.playbook, t.fired_at) for t in (*step.triggers, *step.shadow)]
        self.seen += [("decision", d.playbook, d.verdict, d.at, d.reason) for d in step.decisions]
        for o in step.observations:
            self.looks += o.kind == "daily_scores"
            if o.kind != "daily_scores":  # a look's scores are only reported when a look happens
                self.seen.append((o.kind, cid, *sorted(o.detail.items())))


def states_without_look_times(run: Run) -> dict[str, bytes]:
    return {cid: replace(s, daily_at=None).to_bytes() for cid, s in sorted(run.states.items())}


def both(rules: Rules, records: list[tuple[float, Any]], until: float, config: EngineConfig = CONFIG) -> Iterator[Run]:
    for every_day in (True, False):
        yield Run(config.replace(look_every_day=every_day), rules).feed(records, until)


EVERY = CONFIG.replace(snapshot_backoff=1.0)  # a snapshot every label horizon (before snapshot_backoff)
CAPPED = CONFIG.replace(snapshot_backoff_max_seconds=40 * DAY)


@pytest.mark.parametrize("config", [EVERY, CONFIG, CAPPED], ids=["every-horizon", "backoff", "capped-backoff"])
def test_looking_only_when_due_changes_nothing_but_the_number_of_looks(config: EngineConfig) -> None:
    records = population()
    daily, due = both(SHIPPED, records, T0 + 90 * DAY, config)
    kinds = {s[0] for s in daily.seen}
    assert {"trigger", "decision", "label"} <= kinds
    assert {s[2] for s in daily.seen if s[0] == "trigger"} >= {"onboarding_stalled", "renewal_at_risk",
                                                                "key_feature_unused", "long_inactivity"}
    assert due.seen == daily.seen, "same triggers, decisions, labels and re-engagement, in the same order"
    assert (due.models.labels, due.models.dropped) == (daily.models.labels, daily.models.dropped)
    assert due.models.warm and due.models.to_bytes() == daily.models.to_bytes()
    assert states_without_look_times(due) == states_without_look_times(daily)
    assert due.looks < 0.7 * daily.looks, (due.looks, daily.looks)  # busy customers need a snapshot a day


def test_without_lifecycle_playbooks_a_silent_customer_is_looked_at_once_per_label_horizon() -> None:
    first = PageView(event_id="e1", customer_id="c1", occurred_at=at(T0))
    second = PageView(event_id="e2", customer_id="c1", occurred_at=at(T0 + 3600))
    run = Run(EVERY, builtin_rules()).feed([(T0, first), (T0 + 3600, second)], T0 + 100 * DAY)
    labels = [s for s in run.seen if s[0] == "label" and dict(s[2:])["model"] == "dropoff"]
    # a snapshot the day after, then each horizon (14 days) resolves one "dropped" and takes the next; one
    # more look: the churn prior's summary of this customer at their sampling age (core.detectors.churn);
    # one more: the end of the churn correction's first example (day ~46: 4 expected gaps of ~11 days,
    # core.detectors.churn_learned), whose next one ends after day 100
    assert run.looks == 1 + 100 // 14 + 1 + 1 and len(labels) == 100 // 14
    assert all(dict(s[2:])["label"] == 1 for s in labels)
    churn = [dict(s[2:]) for s in run.seen if s[0] == "label" and dict(s[2:])["model"] == "churn"]
    assert [(c["label"], c["horizon_days"]) for c in churn] == [(1, 45)]
    spaced = Run(CONFIG, builtin_rules()).feed([(T0, first), (T0 + 3600, second)], T0 + 100 * DAY)
    # the default backoff: snapshots on days 1, 15, 43 and 99; labels on days 15, 29 and 57; the churn summary;
    # the churn correction's example end (day ~46)
    assert spaced.looks == 8 and [dict(s[2:])["label"] for s in spaced.seen
                                  if s[0] == "label" and dict(s[2:])["model"] == "dropoff"] == [1, 1, 1]


def test_backoff_spaces_a_silent_customers_looks_out_and_gives_fewer_labels_than_every_horizon() -> None:
    records = population()
    plain = Run(EVERY, SHIPPED).feed(records, T0 + 200 * DAY)
    spaced = Run(CONFIG, SHIPPED).feed(records, T0 + 200 * DAY)
    assert [s for s in spaced.seen if s[0] != "label"] == [s for s in plain.seen if s[0] != "label"], \
        "labels only: triggers and decisions do not depend on the learned model's snapshots"
    assert spaced.models.dropped < 0.7 * plain.models.dropped, (spaced.models.dropped, plain.models.dropped)
    assert spaced.models.labels - spaced.models.dropped <= plain.models.labels - plain.models.dropped
    assert spaced.looks < plain.looks


def test_a_customer_without_models_or_lifecycle_playbooks_has_no_look_due() -> None:
    state = process(None, PageView(event_id="e1", customer_id="c1", occurred_at=at(T0)), CONFIG).state
    assert state is not None and state.daily_at is None
    churn_at = state.slice("churn").churn_deadline  # when scores.churn reaches churn_threshold (a due time, no look)
    assert churn_at is not None and T0 < churn_at < T0 + CONFIG.idle_ttl_seconds
    assert state.slice("silence").deadline is None and next_due(state, CONFIG) == churn_at, "only churn's own time"


def test_a_profile_brings_the_next_look_forward_and_its_dates_set_the_next_ones() -> None:
    signup = date(2026, 3, 10)
    state = process(None, PageView(event_id="e1", customer_id="c1", occurred_at=at(T0)), CONFIG, SHIPPED).state
    assert state is not None and state.daily_at is None, "no profile: no lifecycle playbook can hold"
    profile = Profile(customer_id="c1", updated_at=at(T0), signup_date=signup)
    step = observe_profile(state, ProfileState(), profile, T0 + 10, CONFIG)
    assert step.state is not None and step.state.daily_at is not None and step.state.daily_at - T0 <= DAY
    looked = tick(step.state, step.state.daily_at, CONFIG, SHIPPED, step.profile)
    assert looked.state is not None and looked.state.daily_at is not None
    signup_at = datetime(2026, 3, 10, tzinfo=timezone.utc).timestamp()
    assert 0 <= looked.state.daily_at - (signup_at + 3 * DAY) < DAY, "next look: onboarding's third day"


def test_an_unreadable_snapshot_is_looked_at_soon_and_cleared() -> None:
    models = PartitionModels()
    state = process(None, PageView(event_id="e1", customer_id="c1", occurred_at=at(T0)), CONFIG,
                    models=models).state
    assert state is not None and state.daily_at is not None
    state.slice("learned_dropoff").snapshot = "not base64 at all!"
    second = PageView(event_id="e2", customer_id="c1", occurred_at=at(T0 + 60))
    state = process(state, second, CONFIG, models=models).state
    assert state is not None and state.daily_at is not None and state.daily_at - T0 <= DAY
    state = tick(state, state.daily_at, CONFIG, models=models).state
    assert state is not None and state.slice("learned_dropoff").snapshot is not None and len(state.slice("learned_dropoff").snapshot) == 20


def test_a_daily_condition_without_lifecycle_bounds_is_looked_at_every_day() -> None:
    rules = parse_rules("""
playbooks:
  - name: quiet_week
    on: [daily]
    when: features.events_last_7_days == 0 and profile.days_since_signup >= 3
    channels: [email]
    priority: 10
""", "inline")
    assert rules.daily_bounds == (None,)
    state = process(None, PageView(event_id="e1", customer_id="c1", occurred_at=at(T0)), CONFIG, rules).state
    assert state is not None and state.daily_at is not None and state.daily_at - T0 <= DAY


def test_a_look_without_playbooks_snapshots_exactly_what_the_full_facts_give() -> None:
    from forethought.core import snapshots
    from forethought.core.engine import facts

    run = Run(CONFIG, builtin_rules()).feed(population(customers=4, days=20), T0 + 25 * DAY)
    for state in run.states.values():
        for now in (T0 + 20 * DAY, T0 + 21.3 * DAY):
            lean, full = facts(state, now, CONFIG, brief=True), facts(state, now, CONFIG)
            assert snapshots.codes(lean) == snapshots.codes(full)


def test_due_ticks_leave_the_windows_they_share_with_the_live_state_as_they_were() -> None:
    """A due tick runs on a draft that shares the activity windows and the counts by type with the
    live state (``CustomerState.draft(tick=True)``: nothing to copy per look); that holds only
    while no tick moves them, which this checks over a population with every playbook, every day."""
    run = Run(CONFIG.replace(look_every_day=True), SHIPPED)

    def windows() -> dict[str, tuple[Any, ...]]:
        return {c: (s.activity.head, list(s.activity.counts), s.hours.head, list(s.hours.counts), dict(s.by_type))
                for c, s in run.states.items()}

    ticks = 0
    for t, record in population():
        while run.clock < t:
            run.clock = min(run.clock + 3600, t)
            before = windows()
            emitted = run.runtime.advance(run.clock)
            run.record(emitted)
            ticks += len(emitted)
            after = windows()
            assert {c: after[c] for c in before if c in after} == {c: before[c] for c in before if c in after}
        run.record(run.runtime.feed(record))
    assert ticks > 500 and run.looks > 300, (ticks, run.looks)


def test_due_ticks_change_the_ledger_they_share_with_the_live_state_only_on_their_own_copy() -> None:
    """A due tick's draft shares the policy ledger with the live state too (``draft(tick=True)``): the
    engine copies it before the tick changes it (re-engagement windows ending, variants' pulls settled,
    held triggers released, decisions), so a tick that raises halfway leaves the live state as it was."""
    run = Run(CONFIG.replace(look_every_day=True), SHIPPED)
    changed = unchanged = 0
    for t, record in population():
        while run.clock < t:
            run.clock = min(run.clock + 3600, t)
            before = {c: (s.policy, s.policy.copy()) for c, s in run.states.items()}
            run.record(run.runtime.advance(run.clock))
            for c, s in run.states.items():
                if c in before:
                    shared, content = before[c]
                    assert shared == content, f"{c}: the live state's ledger was changed in place by a tick"
                    changed += s.policy is not shared
                    unchanged += s.policy is shared
        run.record(run.runtime.feed(record))
    assert changed > 20 and unchanged > 200, (changed, unchanged)
