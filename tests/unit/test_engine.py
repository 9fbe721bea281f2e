"""The engine's entry points (process / tick / explain) as a driver would use them."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from datetime import datetime, timezone

import pytest

from forethought.contracts.events import (
    Click,
    ErrorEvent,
    FeatureUsed,
    InboundEvent,
    PageView,
    SessionEnd,
    SessionStart,
    Usage,
)
from forethought.contracts.records import Trigger
from forethought.core.config import EngineConfig
from forethought.core.engine import Step, explain, process, tick
from forethought.core.runtime import PartitionRuntime
from forethought.core.state import CustomerState

T0 = 1_790_000_040.0  # 2026-09-21T14:34:00Z, a bucket boundary for 60 s buckets
MINUTE, HOUR, DAY = 60.0, 3600.0, 86_400.0

# Silence: every event is a visit, and short cadences are allowed to give short deadlines.
SILENCE = EngineConfig(visit_gap_seconds=0, silence_min_seconds=1)
BURST = EngineConfig()  # 60 s buckets, burst_min_errors=5, burst_z=4


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def page(n: int, t: float, customer: str = "c1") -> PageView:
    return PageView(event_id=f"{customer}-p{n}", customer_id=customer, occurred_at=at(t), page="/home")


def error(n: int, t: float, customer: str = "c1", code: str = "E500") -> ErrorEvent:
    return ErrorEvent(event_id=f"{customer}-e{n}", customer_id=customer, occurred_at=at(t), code=code)


def feed(
    state: CustomerState | None, events: Iterable[InboundEvent], config: EngineConfig
) -> tuple[CustomerState, list[Trigger], list[str]]:
    """Run ``events`` in order through the runtime (as the worker and replay do), starting from
    ``state``; return the customer's state, all triggers and observation kinds."""
    runtime = PartitionRuntime(0, config)
    if state is not None:
        runtime.restore([state])
    triggers: list[Trigger] = []
    kinds: list[str] = []
    customer = state.customer_id if state is not None else None
    for event in events:
        customer = event.customer_id
        for emitted in runtime.feed(event):
            assert emitted.step is not None, emitted.error
            triggers += emitted.step.triggers
            kinds += [o.kind for o in emitted.step.observations]
    result = runtime.state(customer) if customer is not None else None
    assert result is not None
    return result, triggers, kinds


def regular(period: float, count: int = 50, customer: str = "c1") -> CustomerState:
    """A customer seen every ``period`` seconds, ``count`` times."""
    state, triggers, _ = feed(None, (page(i, T0 + i * period, customer) for i in range(count)), SILENCE)
    assert triggers == []
    return state


def bucket_start(b: int) -> float:
    return T0 + b * BURST.bucket_seconds


def errors_in_bucket(b: int, count: int, first: int, customer: str = "c1") -> list[ErrorEvent]:
    """``count`` errors spread over bucket ``b``; ids start at ``first``."""
    return [error(first + k, bucket_start(b) + k * 50 / max(count, 1), customer) for k in range(count)]


def steady_errors(per_bucket: int, buckets: int, customer: str = "c1") -> list[ErrorEvent]:
    events: list[ErrorEvent] = []
    for b in range(buckets):
        events += errors_in_bucket(b, per_bucket, len(events), customer)
    return events


# ---- duplicates --------------------------------------------------------------------------------


def test_duplicate_event_id_is_ignored_and_observed() -> None:
    state, _, _ = feed(None, [page(1, T0)], SILENCE)
    step = process(state, page(1, T0), SILENCE)
    assert [o.kind for o in step.observations] == ["duplicate"]
    assert step.state.events == 1
    assert step.state.by_type == {"page_view": 1}
    assert step.state.activity.total() == 1


def test_duplicate_is_still_recognised_after_a_restart() -> None:
    state, _, _ = feed(None, [page(1, T0), page(2, T0 + 10)], SILENCE)
    restored = CustomerState.from_bytes(state.to_bytes(), SILENCE)
    step = process(restored, page(1, T0), SILENCE)
    assert [o.kind for o in step.observations] == ["duplicate"]
    assert (step.state.events, step.state.activity.total()) == (2, 2)


def test_redelivered_errors_do_not_make_a_burst() -> None:
    config = EngineConfig(burst_min_errors=3)
    same_error = error(1, T0)
    state, triggers, kinds = feed(None, [same_error] * 10, config)
    assert triggers == []
    assert kinds == ["duplicate"] * 9
    assert state.error_total == 1


# ---- silence is relative to the customer's own cadence ----------------------------------------


def test_silence_deadline_follows_the_customers_own_cadence() -> None:
    fast = regular(MINUTE)
    slow = regular(6 * HOUR)
    fast_wait = fast.slice("silence").deadline - fast.last_seen
    slow_wait = slow.slice("silence").deadline - slow.last_seen
    # the fast customer is overdue after minutes, the slow one after most of a day
    assert MINUTE < fast_wait < 5 * MINUTE
    assert 6 * HOUR < slow_wait < 2 * DAY
    assert slow_wait / fast_wait > 100
    assert explain(fast, fast.last_seen, SILENCE)["typical_gap_seconds"] < 2 * MINUTE


def test_one_visit_does_not_arm_a_silence_deadline() -> None:
    state, _, _ = feed(None, [page(1, T0)], SILENCE)
    assert state.slice("silence").deadline is None
    assert [t for t in tick(state, T0 + 100 * DAY, SILENCE).triggers if t.detector == "silence"] == []


def test_silence_fires_once_at_the_deadline_with_its_evidence() -> None:
    state = regular(MINUTE)
    deadline, last_seen = state.slice("silence").deadline, state.last_seen
    usual = explain(state, last_seen, SILENCE)["typical_gap_seconds"]

    assert tick(state, deadline - 1, SILENCE).triggers == ()
    assert explain(state, deadline - 1, SILENCE)["scores"]["dropoff"] < 0.99

    (trigger,) = tick(state, deadline, SILENCE).triggers
    assert (trigger.playbook, trigger.detector, trigger.customer_id) == ("silence_dropoff", "silence", "c1")
    assert trigger.fired_at == at(deadline)
    assert trigger.scores["dropoff"] == pytest.approx(0.99, abs=0.001)  # silence_z = 2.33
    (reason,) = trigger.reasons
    assert reason.signal == "silence_seconds"
    assert reason.observed == pytest.approx(deadline - last_seen, abs=0.001)
    assert reason.baseline == pytest.approx(usual, abs=0.001)
    assert reason.observed > reason.baseline
    assert "No activity for" in reason.text and "usually returns within" in reason.text

    assert tick(state, deadline + 1, SILENCE).triggers == ()
    assert tick(state, deadline + 30 * DAY, SILENCE).triggers == ()


def test_new_activity_rearms_and_a_later_silence_is_a_new_episode() -> None:
    state = regular(MINUTE)
    (first,) = tick(state, state.slice("silence").deadline, SILENCE).triggers
    assert state.slice("silence").deadline is None

    back = state.last_seen + 2 * HOUR
    state, _, _ = feed(state, [page(1000, back), page(1001, back + MINUTE)], SILENCE)
    assert state.slice("silence").deadline is not None and state.slice("silence").deadline > back + MINUTE
    assert tick(state, state.slice("silence").deadline - 1, SILENCE).triggers == ()
    (second,) = tick(state, state.slice("silence").deadline, SILENCE).triggers
    assert second.trigger_id != first.trigger_id
    assert second.episode != first.episode
    assert second.fired_at > first.fired_at


def test_silence_trigger_does_not_depend_on_when_tick_runs() -> None:
    early, late = regular(MINUTE), regular(MINUTE)
    (a,) = tick(early, early.slice("silence").deadline + 1, SILENCE).triggers
    (b,) = tick(late, late.slice("silence").deadline + 1000, SILENCE).triggers
    assert a == b
    assert a.model_dump(mode="json") == b.model_dump(mode="json")


# ---- error bursts ------------------------------------------------------------------------------


def test_steady_errors_are_not_a_burst_but_twenty_in_a_bucket_are() -> None:
    state, triggers, _ = feed(None, steady_errors(per_bucket=1, buckets=30), BURST)
    assert triggers == []
    n = state.error_total

    state, triggers, _ = feed(state, errors_in_bucket(30, 2, n) + errors_in_bucket(31, 2, n + 2), BURST)
    assert triggers == []  # twice the usual rate is not a burst

    state, triggers, _ = feed(state, errors_in_bucket(32, 20, n + 4), BURST)
    (burst,) = triggers
    assert (burst.playbook, burst.channel) == ("error_burst", "in_app")
    (reason,) = burst.reasons
    assert reason.signal == "errors_per_bucket"
    assert reason.observed >= 5 and reason.baseline == pytest.approx(1.0, abs=0.2)
    assert explain(state, bucket_start(32) + 55, BURST)["in_error_burst"] is True

    # the burst goes on in the next bucket: same episode, no second trigger
    state, triggers, _ = feed(state, errors_in_bucket(33, 20, n + 24), BURST)
    assert triggers == []

    # three quiet buckets end the burst; the next one is a new episode
    quiet = [e for b in (34, 35, 36) for e in errors_in_bucket(b, 1, n + 44 + b)]
    state, triggers, _ = feed(state, quiet, BURST)
    assert triggers == []
    state, triggers, _ = feed(state, errors_in_bucket(37, 20, n + 100), BURST)
    (again,) = triggers
    assert again.trigger_id != burst.trigger_id and again.episode != burst.episode


def errors_needed_to_fire(state: CustomerState, b: int) -> int:
    """Add errors to bucket ``b`` one by one until a burst fires; how many it took."""
    for k in range(1, 200):
        step = process(state, error(10_000 + k, bucket_start(b) + k * 0.2), BURST)
        state = step.state
        if step.triggers:
            return k
    raise AssertionError("no burst within 200 errors")


def test_a_customer_with_a_high_error_baseline_needs_far_more_errors_to_fire() -> None:
    low, _, _ = feed(None, steady_errors(per_bucket=1, buckets=30, customer="low"), BURST)
    high, _, _ = feed(None, steady_errors(per_bucket=15, buckets=30, customer="high"), BURST)
    assert not explain(high, bucket_start(30), BURST)["in_error_burst"]

    low_needed = errors_needed_to_fire(low, 31)
    high_needed = errors_needed_to_fire(high, 31)
    assert low_needed <= 5
    assert high_needed > 20  # twenty errors would alarm on the low customer, not on this one
    assert high_needed >= 4 * low_needed


# ---- late events -------------------------------------------------------------------------------


def test_events_older_than_the_allowed_lateness_are_counted_late_only() -> None:
    config = EngineConfig()  # allowed_lateness_seconds = 300
    state, _, _ = feed(None, [page(1, T0), page(2, T0 + 1000)], config)
    too_old = T0 + 1000 - 301

    step = process(state, page(3, too_old), config)
    assert [o.kind for o in step.observations] == ["late"]
    assert step.state.late == 1
    assert step.state.last_seen == T0 + 1000
    assert step.state.activity.count(int(too_old // config.bucket_seconds)) == 0


def test_events_within_the_allowed_lateness_land_in_their_own_bucket() -> None:
    config = EngineConfig()
    state, _, _ = feed(None, [page(1, T0), page(2, T0 + 1000)], config)
    a_bit_old = T0 + 1000 - 250

    step = process(state, page(3, a_bit_old), config)
    assert step.observations == ()
    assert step.state.late == 0
    assert step.state.last_seen == T0 + 1000
    assert step.state.activity.count(int(a_bit_old // config.bucket_seconds)) == 1
    assert step.state.activity.count(int((T0 + 1000) // config.bucket_seconds)) == 1


# ---- eviction ----------------------------------------------------------------------------------


def test_idle_customer_is_evicted_at_the_ttl() -> None:
    config = EngineConfig(idle_ttl_seconds=7 * DAY)
    state, _, _ = feed(None, [page(1, T0)], config)
    assert tick(state, T0 + 7 * DAY - 1, config).state is state
    step = tick(state, T0 + 7 * DAY, config)
    assert step.state is None
    assert [o.kind for o in step.observations] == ["evicted"]


# ---- determinism -------------------------------------------------------------------------------


Action = tuple[float, InboundEvent | None, str]


def scenario(seed: int = 7) -> list[Action]:
    """Three customers with their own cadences, error bursts and silences, plus ticks.

    Returns ``(time, event, customer)`` actions in time order; ``event`` None means a tick.
    """
    rnd = random.Random(seed)
    events: list[InboundEvent] = []
    for customer, period in (("fast", MINUTE), ("medium", 10 * MINUTE), ("hourly", HOUR)):
        t, n = T0, 0
        for session in range(3):
            for _ in range(40):
                t += period * rnd.uniform(0.8, 1.2)
                n += 1
                events.append(error(n, t, customer) if n % 7 == 0 else page(n, t, customer))
            if session == 1:  # a burst of errors in one bucket
                n += 1
                events += [error(n * 100 + k, t + 1 + k, customer, "E503") for k in range(25)]
            t += 40 * period  # a silence long for this customer
    actions: list[Action] = [(e.epoch, e, e.customer_id) for e in events]
    end = max(e.epoch for e in events) + 5 * DAY
    t = T0
    while t < end:
        t += 300
        actions += [(t, None, c) for c in ("fast", "medium", "hourly")]
    return sorted(actions, key=lambda a: (a[0], a[1] is None))


def run(actions: list[Action], config: EngineConfig, restart: bool) -> list[Trigger]:
    """Drive the engine like the worker does; with ``restart`` every state goes through bytes."""
    states: dict[str, CustomerState] = {}
    fired: list[Trigger] = []
    for t, event, customer in actions:
        if event is None and customer not in states:
            continue
        step: Step = (
            process(states.get(customer), event, config) if event else tick(states[customer], t, config)
        )
        fired += step.triggers
        if step.state is None:
            del states[customer]
        else:
            states[customer] = (
                CustomerState.from_bytes(step.state.to_bytes(), config) if restart else step.state
            )
    return fired


MIXED = EngineConfig(visit_gap_seconds=0, silence_min_seconds=60)


def test_same_input_twice_gives_identical_triggers() -> None:
    actions = scenario()
    first, second = run(actions, MIXED, restart=False), run(copy.deepcopy(actions), MIXED, restart=False)
    assert first == second
    playbooks = {t.playbook for t in first}
    assert playbooks == {"silence_dropoff", "error_burst"}
    assert len({t.trigger_id for t in first}) == len(first)  # one trigger per episode


def test_triggers_round_trip_through_json() -> None:
    fired = run(scenario(), MIXED, restart=False)
    assert fired
    for trigger in fired:
        assert Trigger.model_validate(trigger.model_dump(mode="json")) == trigger
        assert Trigger.model_validate_json(trigger.model_dump_json()) == trigger


def test_a_restart_between_events_does_not_change_the_triggers() -> None:
    actions = scenario()
    uninterrupted = run(actions, MIXED, restart=False)
    restarted = run(actions, MIXED, restart=True)
    assert [t.trigger_id for t in restarted] == [t.trigger_id for t in uninterrupted]
    assert restarted == uninterrupted


# ---- state size --------------------------------------------------------------------------------


def mixed_events(count: int, customer: str = "c1", seed: int = 11) -> list[InboundEvent]:
    rnd = random.Random(seed)
    t, out = T0, []
    for n in range(count):
        t += rnd.expovariate(1 / 30)
        common = {"event_id": f"{customer}-{n}", "customer_id": customer, "occurred_at": at(t),
                  "account_id": "acct-1", "properties": {"plan": "pro"}}
        kind = rnd.choice(["page", "page", "page", "click", "feature", "error", "usage", "session"])
        if kind == "page":
            out.append(PageView(**common, page=f"/p/{rnd.randrange(50)}"))
        elif kind == "click":
            out.append(Click(**common, target="button"))
        elif kind == "feature":
            out.append(FeatureUsed(**common, feature=rnd.choice(["export", "share", "search"])))
        elif kind == "error":
            out.append(ErrorEvent(**common, code="E500", message="boom"))
        elif kind == "usage":
            out.append(Usage(**common, metric="api_calls", quantity=rnd.randrange(100)))
        else:
            out.append(rnd.choice([SessionStart, SessionEnd])(**common))
    return out


def test_state_of_a_busy_customer_stays_under_one_kib() -> None:
    state, _, _ = feed(None, mixed_events(1000), EngineConfig())
    assert state.events == 1000 and len(state.by_type) == 7
    size = len(state.to_bytes())
    print(f"customer state after 1000 mixed events: {size} bytes")
    assert size < 1024, size
    restored = CustomerState.from_bytes(state.to_bytes(), EngineConfig())
    assert restored.to_bytes() == state.to_bytes()


def test_a_due_silence_fires_the_same_whether_or_not_the_timer_ran_before_the_next_event() -> None:
    from datetime import datetime, timezone

    from forethought.contracts.events import PageView
    from forethought.core.engine import process, tick

    config = EngineConfig(visit_gap_seconds=0, prior_gap_seconds=60, silence_min_seconds=60, prior_log_sd=0.3)

    def view(n: int, at: float) -> PageView:
        return PageView(event_id=f"v{n}", customer_id="c", occurred_at=datetime.fromtimestamp(at, tz=timezone.utc))

    def history() -> object:
        state = None
        for i in range(10):
            state = process(state, view(i, 1_800_000_000 + 60 * i), config).state
        return state

    late_event = view(99, 1_800_000_000 + 60 * 9 + 86_400)
    with_timer = history()
    timer_step = tick(with_timer, late_event.epoch - 1, config)
    after_timer = process(timer_step.state, late_event, config)
    without_timer = process(history(), late_event, config)
    assert [t.playbook for t in timer_step.triggers] == ["silence_dropoff"] and not after_timer.triggers
    assert without_timer.triggers == timer_step.triggers
    assert without_timer.state.to_dict() == after_timer.state.to_dict()


def test_a_weekly_rhythm_is_not_mistaken_for_drop_off_but_a_longer_silence_is() -> None:
    """An office user: hourly visits 9-17 on weekdays, nothing at night or at weekends."""
    from datetime import datetime, timezone

    from forethought.contracts.events import PageView
    from forethought.core.engine import process, tick

    config = EngineConfig()
    monday = datetime(2026, 9, 7, tzinfo=timezone.utc).timestamp()
    state, fired, n = None, [], 0
    for week in range(4):
        for day in range(5):
            for hour in range(9, 18):
                at = monday + week * 7 * 86_400 + day * 86_400 + hour * 3600
                n += 1
                step = process(state, PageView(event_id=f"e{n}", customer_id="office",
                                               occurred_at=datetime.fromtimestamp(at, tz=timezone.utc)), config)
                state, fired = step.state, fired + list(step.triggers)
    weekend_fired = [t for t in fired if t.playbook == "silence_dropoff" and t.fired_at.timestamp() > monday + 7 * 86_400]
    assert weekend_fired == [], "after the first weekend, weekends are this customer's rhythm"
    last = state.last_seen
    assert tick(state, last + 2.5 * 86_400, config).triggers == (), "an ordinary weekend"
    gone = tick(state, last + 10 * 86_400, config).triggers
    assert [t.playbook for t in gone] == ["silence_dropoff"]
    assert "usually returns within" in gone[0].reasons[0].text
